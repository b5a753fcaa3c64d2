"""Revocations between gateway replicas over core NATS (`auth.revoked.<org>`): each replica
caches verified credentials, so a sign-out or key revocation on one must reach the others.

Fire-and-forget is enough: a replica that misses an announcement (disconnected at that moment)
still stops accepting the credential when its cache entry expires (`GATEWAY_AUTH_CACHE_S`) and
the next verification finds the revocation in Valkey."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from switchboard_common.bus import publish_fast
from switchboard_common.credentials import CredentialRevoked, credential_revoked_subject

log = logging.getLogger(__name__)


class Revocations:
    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._sub: Subscription | None = None

    async def announce(self, event: CredentialRevoked) -> None:
        await publish_fast(self._nc, credential_revoked_subject(event.org_id), event)

    async def listen(self, on_revoked: Callable[[CredentialRevoked], None]) -> None:
        async def handle(msg: Msg) -> None:
            try:
                on_revoked(CredentialRevoked.model_validate_json(msg.data))
            except ValidationError:
                log.warning("malformed revocation on %s ignored", msg.subject)

        self._sub = await self._nc.subscribe(credential_revoked_subject("*"), cb=handle)
