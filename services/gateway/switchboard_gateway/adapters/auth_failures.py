"""Failed authentications per source address, limited with the `limits` package: a moving
window kept in Valkey (so every gateway replica counts together), with `limits`' own atomic
Lua scripts instead of hand-written counters.

Only failures are counted, so a valid caller never pays a Valkey round trip for this. Once an
address is over the limit it is remembered in-process until its window frees a slot, and
refused before any verification; another replica learns it at that address's next failure."""

from __future__ import annotations

import logging
import time

import redis.asyncio as redis
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

_MAX_BLOCKED = 10_000
"""Bound on remembered addresses: past it, expired entries are dropped first."""


class AuthFailures:
    def __init__(self, valkey: redis.Redis, limit: str) -> None:
        # The gateway's own connection pool: one place holds Valkey's address and password.
        # `limits` types its options as scalars but hands them to redis-py, which takes a pool.
        storage = RedisStorage("async+redis://", implementation="redispy",
                               connection_pool=valkey.connection_pool,  # type: ignore[arg-type]
                               key_prefix="auth-failures")
        self._limiter = MovingWindowRateLimiter(storage)
        self._item = parse(limit)
        self._blocked: dict[str, float] = {}

    def retry_after(self, source: str) -> int | None:
        """Seconds until `source` may try again, or None when it is not blocked."""
        until = self._blocked.get(source)
        if until is None:
            return None
        left = until - time.time()
        if left <= 0:
            del self._blocked[source]
            return None
        return max(1, int(left + 0.999))

    async def failed(self, source: str) -> int | None:
        """Count one failure; seconds to wait when this one went over the limit."""
        try:
            if await self._limiter.hit(self._item, source):
                return None
            stats = await self._limiter.get_window_stats(self._item, source)
        except (redis.RedisError, OSError) as exc:
            # Authentication itself still fails closed; only the counting is skipped.
            log.warning("auth failure not counted, Valkey unavailable: %s", type(exc).__name__)
            return None
        if len(self._blocked) >= _MAX_BLOCKED:
            now = time.time()
            self._blocked = {s: t for s, t in self._blocked.items() if t > now}
        self._blocked[source] = stats.reset_time
        log.warning("source %s: too many failed authentications, refused until the window "
                    "frees a slot", source)
        return self.retry_after(source)
