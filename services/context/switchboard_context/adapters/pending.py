"""Turn requests waiting for their model result (`ctx:pending:{turn}`), kept until the turn
finishes or its time-to-live passes."""

from __future__ import annotations

import redis.asyncio as redis

from switchboard_common.turns import TurnRequest


class PendingTurns:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._r = client
        self._ttl = ttl_s

    def record(self, turn: TurnRequest) -> tuple[str, bytes, int]:
        """(key, value, ttl) to store a turn, for callers that batch it with other writes."""
        return self.key(turn.turn_id), turn.model_dump_json().encode(), self._ttl

    @staticmethod
    def key(turn_id: str) -> str:
        """Where a turn is kept, for callers that delete it together with other writes."""
        return f"ctx:pending:{turn_id}"

    async def get(self, turn_id: str) -> TurnRequest | None:
        raw = await self._r.get(self.key(turn_id))
        return TurnRequest.model_validate_json(raw) if raw else None
