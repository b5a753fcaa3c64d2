"""Ingest batches you can follow: the gateway opens a batch when it accepts an upload,
memory_indexer records each event's outcome, and anyone asks for the counts
(`GET /v1/clients/<client>/ingest/<batch>`).

Valkey layout (kept 7 days, as long as SB_INGEST keeps the events):
- `ingest:batch:{org}:{batch}` hash: client, state (`publishing` until every event of the upload
  is in the stream, then `accepted`), accepted, duplicates, created_at;
- `ingest:batch:{org}:{batch}:{indexed|failed|forgotten}` sets of event ids.
Outcomes are sets, not counters, so a redelivered event that is indexed twice counts once.
`failed`: indexing kept failing until max_deliver; `forgotten`: a forget covered the event before
it was indexed (see memory_indexer's tombstones), so it will never be searchable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import redis.asyncio as redis
from pydantic import BaseModel

Outcome = Literal["indexed", "failed", "forgotten"]
OUTCOMES: tuple[Outcome, ...] = ("indexed", "failed", "forgotten")
TTL_S = 7 * 86400


class BatchStatus(BaseModel):
    batch_id: str
    client_id: str
    state: Literal["publishing", "accepted"]
    accepted: int
    """Events stored in SB_INGEST for indexing."""
    duplicates: int
    """Events the stream already had (same event id within its duplicate window): not counted
    again here; they are indexed under the batch that first sent them."""
    indexed: int
    failed: int
    forgotten: int
    pending: int
    done: bool
    """Every accepted event is searchable, failed or forgotten: nothing more will change."""
    created_at: datetime


class IngestBatches:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @staticmethod
    def _key(org: str, batch: str) -> str:
        return f"ingest:batch:{org}:{batch}"

    async def open(self, org: str, client: str, batch: str) -> None:
        await self._r.hset(self._key(org, batch), mapping={
            "client": client, "state": "publishing", "accepted": 0, "duplicates": 0,
            "created_at": datetime.now(UTC).isoformat()})
        await self._r.expire(self._key(org, batch), TTL_S)

    async def accepted(self, org: str, batch: str, accepted: int, duplicates: int) -> None:
        await self._r.hset(self._key(org, batch), mapping={
            "state": "accepted", "accepted": accepted, "duplicates": duplicates})

    async def record(self, org: str, batch: str, event_id: str, outcome: Outcome) -> None:
        key = f"{self._key(org, batch)}:{outcome}"
        pipe = self._r.pipeline(transaction=False)
        pipe.sadd(key, event_id)
        pipe.expire(key, TTL_S)
        await pipe.execute()

    async def status(self, org: str, batch: str) -> BatchStatus | None:
        key = self._key(org, batch)
        pipe = self._r.pipeline(transaction=False)
        pipe.hgetall(key)
        for outcome in OUTCOMES:
            pipe.scard(f"{key}:{outcome}")
        head, indexed, failed, forgotten = await pipe.execute()
        if not head:
            return None
        h = {k.decode(): v.decode() for k, v in head.items()}
        accepted = int(h["accepted"])
        settled = indexed + failed + forgotten
        return BatchStatus(
            batch_id=batch, client_id=h["client"], state=h["state"],
            accepted=accepted, duplicates=int(h["duplicates"]), indexed=indexed, failed=failed,
            forgotten=forgotten, pending=max(accepted - settled, 0),
            done=h["state"] == "accepted" and settled >= accepted,
            created_at=datetime.fromisoformat(h["created_at"]))
