"""The last uploaded event of each thread of a client, so the next upload continues it.

Key: `ingest:thread:{org}:{client}` hash, one field per thread (`<source>/<user or empty>`,
switchboard_common.memory_threads) holding the tail as JSON; it expires `TTL_S` after the
client's last upload. One HMGET before an upload and one pipelined HSET + EXPIRE after it,
whatever the number of events and threads.

Concurrent uploads of one thread are best effort: both continue from the tail they read, and
the one that finishes last leaves its own tail. At worst an event gets no context, or the text
of another event of its own thread than the one just before it (an earlier one, or among turns
sharing one time a later one); never another audience's, never one beyond the time rule.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import redis.asyncio as redis
from pydantic import ValidationError

from switchboard_common.memory_threads import ThreadTail

TTL_S = 3600
"""Long enough for a client that uploads a transcript one turn per request, however slowly;
the time rule (THREAD_GAP on the events' own times), not this, decides what continues."""


class ThreadTails:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @staticmethod
    def _key(org: str, client: str) -> str:
        return f"ingest:thread:{org}:{client}"

    async def load(self, org: str, client: str, threads: Collection[str]
                   ) -> dict[str, ThreadTail]:
        if not threads:
            return {}
        names = list(threads)
        values = await self._r.hmget(self._key(org, client), names)
        tails = {}
        for name, value in zip(names, values, strict=True):
            if value is None:
                continue
            try:
                tails[name] = ThreadTail.model_validate_json(value)
            except ValidationError:
                # A tail written by another version of the gateway: costs one context at most,
                # where refusing it would refuse the client's uploads for an hour.
                continue
        return tails

    async def save(self, org: str, client: str, tails: Mapping[str, ThreadTail]) -> None:
        if not tails:
            return
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(self._key(org, client),
                  mapping={name: tail.model_dump_json() for name, tail in tails.items()})
        pipe.expire(self._key(org, client), TTL_S)
        await pipe.execute()

    async def drop(self, org: str, client: str) -> None:
        """After a forget: a forgotten event's text must not become a later event's context."""
        await self._r.delete(self._key(org, client))
