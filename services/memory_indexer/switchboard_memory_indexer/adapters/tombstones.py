"""Tombstones: what was forgotten stays forgotten.

A forget deletes what is indexed, but an event can still be on its way: fetched and being
embedded when the forget runs, or redelivered later by JetStream (its ack was lost, the indexer
crashed). A tombstone records, per forgotten target, the last stream sequence of SB_INGEST and
SB_HISTORY at the moment of the forget: every message stored up to then is covered, every
message published afterwards is a new fact and is indexed. Sequences, not clocks: the stream
orders messages itself, so no clock skew between NATS and this process can misplace one.

Layout: hash `{base}:tomb:{org}:{client}`, field `client` | `item:<id>` | `source:<s>` |
`conv:<c>`, value `{"ingest": seq, "history": seq}`. Kept 8 days, one more than the streams
keep messages (7): after that nothing older than the tombstone can be delivered any more.

Ordering that closes the race with an in-flight write (see MemoryService): the forget writes the
tombstone *before* it deletes, and the indexer checks *after* it writes (and deletes what it
wrote if covered). Either the forget's delete runs after the write and removes it, or the
indexer's check runs after the tombstone and sees it. A delivery that dies between its write
and that check leaves its item behind; its redelivery is covered, and removes the item before
it acks."""

from __future__ import annotations

import json
from typing import Literal

import redis.asyncio as redis

from switchboard_memory_indexer.domain.ports import Forget

StreamName = Literal["ingest", "history"]
TTL_S = 8 * 86400


def _field(what: Forget) -> str:
    if what.item_id:
        return f"item:{what.item_id}"
    if what.source:
        return f"source:{what.source}"
    if what.conversation:
        return f"conv:{what.conversation}"
    return "client"


class Tombstones:
    def __init__(self, client: redis.Redis, base: str = "sbmem") -> None:
        self._r = client
        self._base = base

    def _key(self, org: str, client: str) -> str:
        return f"{self._base}:tomb:{org}:{client}"

    async def bury(self, org: str, client: str, what: Forget, marks: dict[StreamName, int]
                   ) -> None:
        key = self._key(org, client)
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(key, _field(what), json.dumps(marks))
        pipe.expire(key, TTL_S)
        await pipe.execute()

    async def covers(self, org: str, client: str, *, item: str, source: str,
                     conversation: str | None, stream: StreamName, seq: int) -> bool:
        """True when a forget issued after this message was stored (stream sequence `seq`)
        covers the item: by its id, its source, its conversation or its whole client."""
        fields = ["client", _field(Forget(item_id=item)), _field(Forget(source=source))]
        if conversation:
            fields.append(_field(Forget(conversation=conversation)))
        values = await self._r.hmget(self._key(org, client), fields)
        return any(v is not None and int(json.loads(v).get(stream, 0)) >= seq for v in values)
