"""Counting for the consumption limits, in Valkey, shared by every gateway replica.

- Rates (turns per user and per org, ingest events per caller) use the `limits` package's
  moving-window limiter over the gateway's own Valkey pool (`implementation="redispy"`): a
  well-kept library with an atomic Lua script per hit, exact over any 60 s (no burst at a
  fixed window's edge).
- Concurrent turns per user are a sorted set `limits:active:{org}:{user}` of idempotency
  keys scored by their turn's deadline: one Lua script drops expired members, counts and adds
  atomically, so a gateway that dies mid-turn frees its slots at the deadline by itself.
- The monthly token budget reads `usage:{org}:month:{YYYY-MM}` (context counts it once per
  turn, in the same script that appends the turn).
- Per-org overrides live in the hash `limits:{org}`; each replica caches them for
  `cache_s` so a turn costs no extra round trip for them.

A turn's checks cost three round trips (bench/limit_checks.py); only a refusal costs more (the
window's reset time, releasing a slot already taken). Freeing the slot happens after the
turn's last frame went out, off the turn's latency.
Sockets per user are counted per replica in memory (see `SocketCounter`)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from switchboard_common.conversations import budget_tokens, month_usage_key
from switchboard_common.envelope import utcnow
from switchboard_common.errors import ErrorCode
from switchboard_common.metrics import RATE_LIMIT_REFUSALS
from switchboard_gateway.domain.identity import Identity
from switchboard_gateway.domain.limits import (
    BudgetWarning,
    LimitsUpdate,
    OrgLimits,
    Refusal,
    budget_refusal,
    budget_state,
    rate_refusal,
)

# Take a concurrent-turn slot (a re-sent key keeps its own) and, when the org has a budget,
# return the month's usage with it: {1|0, field, value, ...}.
_ADMIT = """
local usage = {}
if ARGV[5] == '1' then usage = redis.call('HGETALL', KEYS[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return {0} end
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[2])))
end
local out = {1}
for i = 1, #usage do out[i + 1] = usage[i] end
return out
"""


def _overrides_key(org: str) -> str:
    return f"limits:{org}"


def _active_key(who: Identity) -> str:
    return f"limits:active:{who.org}:{who.user}"


@dataclass(frozen=True)
class Admitted:
    warning: BudgetWarning | None = None


class Limiter:
    def __init__(self, valkey: redis.Redis, valkey_url: str, defaults: OrgLimits,
                 cache_s: float = 5.0) -> None:
        self._r = valkey
        # The library's options are typed as scalars; a pool is what it documents for sharing.
        storage = RedisStorage(f"async+{valkey_url}", implementation="redispy",
                               connection_pool=valkey.connection_pool)  # type: ignore[arg-type]
        self._window = MovingWindowRateLimiter(storage)
        self._admit: Any = valkey.register_script(_ADMIT)
        self._defaults = defaults
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, OrgLimits]] = {}

    # ---- per-org settings ----
    async def org_limits(self, org: str) -> OrgLimits:
        cached = self._cache.get(org)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        raw = await self._r.hgetall(_overrides_key(org))
        overrides = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
        merged = self._defaults.model_dump()
        for name, value in overrides.items():
            if name in merged:
                merged[name] = None if value in (b"", "") else value
        limits = OrgLimits.model_validate(merged)
        self._cache[org] = (time.monotonic() + self._cache_s, limits)
        return limits

    async def update(self, org: str, change: LimitsUpdate) -> OrgLimits:
        key = _overrides_key(org)
        if change.reset:
            await self._r.delete(key)
        values = change.model_dump(exclude_unset=True, exclude={"reset"})
        if values:
            await self._r.hset(key, mapping={
                k: "" if v is None else str(v) for k, v in values.items()})
        self._cache.pop(org, None)
        return await self.org_limits(org)

    # ---- turns ----
    async def admit_turn(self, who: Identity, key: str, deadline_s: float
                         ) -> Admitted | Refusal:
        """Count one new turn of `who` (`key`: its idempotency key) against every limit, or
        say which refused it. An admitted turn holds a concurrency slot until `end_turn`
        (or its deadline).

        Three round trips, one after the other (on one event loop, concurrent requests to a
        loopback Valkey cost more than sequential ones): the user's window, the org's window,
        then one script that takes the slot and reads the month's usage. A refusal stops at
        the first limit that refuses."""
        limits = await self.org_limits(who.org)
        per_user = RateLimitItemPerMinute(limits.turns_per_minute_user)
        if not await self._window.hit(per_user, "turns-user", who.org, who.user):
            return await self._rate(per_user, "turns_per_user", "turns for this user",
                                    "turns-user", who.org, who.user)
        per_org = RateLimitItemPerMinute(limits.turns_per_minute_org)
        if not await self._window.hit(per_org, "turns-org", who.org):
            return await self._rate(per_org, "turns_per_org", "turns for this org",
                                    "turns-org", who.org)
        now = time.time()
        budgeted = limits.monthly_token_budget is not None
        slot, *fields = await self._admit(
            keys=[_active_key(who), month_usage_key(who.org)],
            args=[now, now + deadline_s, limits.concurrent_turns_user, key, int(budgeted)])
        if not slot:
            RATE_LIMIT_REFUSALS.labels("concurrent_turns_per_user").inc()
            return Refusal(ErrorCode.RATE_LIMITED, f"too many turns running at once: at most "
                           f"{limits.concurrent_turns_user} per user", 1.0)
        used = budget_tokens({_s(k): int(v) for k, v in zip(fields[::2], fields[1::2],
                                                             strict=True)})
        state = budget_state(limits, used)
        if state == "stop":
            RATE_LIMIT_REFUSALS.labels("org_tokens_month").inc()
            await self.end_turn(who, key)
            return budget_refusal(limits, used, utcnow())
        if state == "warn" and limits.monthly_token_budget is not None:
            return Admitted(BudgetWarning(used, limits.monthly_token_budget))
        return Admitted()

    async def end_turn(self, who: Identity, key: str) -> None:
        await self._r.zrem(_active_key(who), key)

    async def _rate(self, item: RateLimitItemPerMinute, limit: str, what: str,
                    *ids: str) -> Refusal:
        RATE_LIMIT_REFUSALS.labels(limit).inc()
        stats = await self._window.get_window_stats(item, *ids)
        return rate_refusal(what, item.amount, stats.reset_time - time.time())

    # ---- ingest ----
    async def admit_ingest(self, who: Identity, events: int) -> Refusal | None:
        limits = await self.org_limits(who.org)
        item = RateLimitItemPerMinute(limits.ingest_events_per_minute)
        if await self._window.hit(item, "ingest", who.org, who.user, cost=events):
            return None
        return await self._rate(item, "ingest_events_per_key", "ingested events", "ingest",
                                who.org, who.user)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SocketCounter:
    """Open sockets per user on this replica. In memory on purpose: a socket lives in one
    process, and a crashed replica takes its count with it (nothing to expire)."""

    def __init__(self) -> None:
        self._open: Counter[tuple[str, str]] = Counter()

    def open(self, who: Identity, limit: int) -> Refusal | None:
        key = (who.org, who.user)
        if self._open[key] >= limit:
            RATE_LIMIT_REFUSALS.labels("sockets_per_user").inc()
            return Refusal(ErrorCode.RATE_LIMITED,
                           f"too many open connections: at most {limit} per user", 5.0)
        self._open[key] += 1
        return None

    def close(self, who: Identity) -> None:
        key = (who.org, who.user)
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]
