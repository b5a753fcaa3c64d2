"""The access check a `user_message` passes before it starts a turn: the same rules as the REST
API (`domain.access`), answered with error frames instead of status codes."""

from __future__ import annotations

import logging

from nats.errors import Error as NatsError
from redis.exceptions import RedisError

from switchboard_common.directory import Client, Directory
from switchboard_common.errors import ErrorCode
from switchboard_common.skills import Tier
from switchboard_gateway.adapters.client_cache import ClientCache
from switchboard_gateway.adapters.skills import SkillsBus
from switchboard_gateway.domain.access import (
    ClientForbidden,
    ClientNotFound,
    Principal,
    check_client,
)
from switchboard_gateway.domain.protocol import ErrorFrame, UserMessage

log = logging.getLogger(__name__)

_UNAVAILABLE = (RedisError, NatsError, OSError, TimeoutError)


def _frame(who: Principal, code: ErrorCode, message: str, key: str,
           retryable: bool = False) -> str:
    return ErrorFrame(org_id=who.org, code=code, message=message, retryable=retryable,
                      idempotency_key=key).model_dump_json()


class ClientGate:
    def __init__(self, directory: Directory, clients: ClientCache, skills: SkillsBus,
                 auto_provision: bool) -> None:
        self._directory = directory
        self._clients = clients
        self._skills = skills
        self._auto_provision = auto_provision

    async def admit(self, who: Principal, msg: UserMessage) -> str | None:
        """None when the caller may talk about `msg.client_id`, else the error frame."""
        key = msg.idempotency_key
        principal = who
        try:
            client = await self._clients.get(who.org, msg.client_id)
            if client is None and self._auto_provision:
                client = await self._provision(principal, msg.client_id)
        except _UNAVAILABLE as exc:
            log.warning("client check refused, store unavailable: %s", type(exc).__name__)
            return _frame(who, ErrorCode.UNAVAILABLE, "directory unavailable, retry", key,
                          retryable=True)
        try:
            check_client(principal, msg.client_id, client)
        except ClientNotFound as exc:
            return _frame(who, ErrorCode.UNKNOWN_CLIENT, str(exc), key)
        except ClientForbidden as exc:
            return _frame(who, ErrorCode.FORBIDDEN, str(exc), key)
        return None

    async def _provision(self, who: Principal, client_id: str) -> Client | None:
        client = Client(id=client_id, name=client_id, assigned_users=[who.user.id])
        if await self._directory.add_client(who.org, client):
            log.info("org=%s: client %s auto-provisioned for %s", who.org, client_id,
                     who.user.id)
            # A context replica may have cached this id as unknown.
            await self._skills.changed(who.org, Tier.CLIENT, client_id)
            return client
        # Someone created it meanwhile: theirs, and the normal check decides.
        return await self._directory.get_client(who.org, client_id)
