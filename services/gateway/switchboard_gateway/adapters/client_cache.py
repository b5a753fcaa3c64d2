"""Client records for the turn gate, cached in-process: the access check a `user_message`
passes (`handlers/clients.py`) would otherwise read the client from Valkey on every turn.

A record is kept per (org, client) until a client of that org changes. Every write of a
client publishes `skills.changed.<org>` (routes/clients.py, through `SkillsBus.changed`):
the replica that writes drops the org's records before it announces, and every replica that
hears the announcement drops them too, as context drops its skill resolutions. Safety nets
for an announcement a replica missed: the whole cache is dropped when its NATS connection
comes back, and a record is trusted for `ttl_s` at most (`GATEWAY_CLIENT_CACHE_S`).

Only records that exist are kept (an unknown id is read every time, so probing ids costs no
memory here), and only the socket's gate reads through the cache: the REST API reads the
directory fresh, since its writes are read-modify-write of the same records."""

from __future__ import annotations

import logging
import time

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from switchboard_common.directory import Client, Directory, skills_changed_subject

log = logging.getLogger(__name__)

_PER_ORG = 10_000
"""Records kept per org; past it the org's records are dropped and read again."""


class ClientCache:
    def __init__(self, directory: Directory, ttl_s: float) -> None:
        self._directory = directory
        self._ttl = ttl_s
        self._orgs: dict[str, dict[str, tuple[float, Client]]] = {}
        self._changes = 0
        """Counts invalidations: a read that began before one must not store what it read
        (it may predate the change)."""

    async def get(self, org: str, client_id: str) -> Client | None:
        records = self._orgs.get(org)
        hit = records.get(client_id) if records is not None else None
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        changes = self._changes
        client = await self._directory.get_client(org, client_id)
        if client is not None and self._ttl > 0 and changes == self._changes:
            records = self._orgs.setdefault(org, {})
            if len(records) >= _PER_ORG:
                records.clear()
            records[client_id] = (now + self._ttl, client)
        return client

    def invalidate(self, org: str) -> None:
        self._changes += 1
        self._orgs.pop(org, None)

    def clear(self) -> None:
        self._changes += 1
        self._orgs.clear()

    async def listen(self, nc: NatsClient) -> None:
        """Drop an org's records whenever any replica announces a change of it."""
        async def changed(msg: Msg) -> None:
            self.invalidate(msg.subject.rsplit(".", 1)[-1])

        await nc.subscribe(skills_changed_subject("*"), cb=changed)
