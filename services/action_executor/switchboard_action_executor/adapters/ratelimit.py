"""Per (org, client, tool) call limits in Valkey: a fixed one-minute window, shared by every
executor replica."""

from __future__ import annotations

import time

import redis.asyncio as redis


class RateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    async def allow(self, org: str, client: str, tool: str, per_minute: int) -> bool:
        window = int(time.time() // 60)
        key = f"rl:{org}:{client}:{tool}:{window}"
        pipe = self._r.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
        return int(count) <= per_minute
