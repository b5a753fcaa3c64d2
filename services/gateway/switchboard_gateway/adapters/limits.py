"""Counting for the consumption limits, in Valkey, shared by every gateway replica.

- Rates (turns per user and per org, ingest events per caller) use the `limits` package's
  moving window over the gateway's own Valkey pool (`implementation="redispy"`): a well-kept
  library whose window is a list of hit times, taken by one atomic Lua script per hit, exact
  over any 60 s (no burst at a fixed window's edge).
- Concurrent turns per user are a sorted set `limits:active:{org}:{user}` of idempotency
  keys scored by their turn's deadline, so a gateway that dies mid-turn frees its slots at the
  deadline by itself.
- The monthly token budget reads `usage:{org}:month:{YYYY-MM}` (context counts it once per
  turn, in the same script that appends the turn).
- Per-org overrides live in the hash `limits:{org}`; each replica caches them for
  `cache_s` so a turn costs no extra round trip for them.

Admitting a turn is ONE round trip: one script of ours checks the budget, runs the library's
own moving-window script (its text, `RedisBridge.SCRIPT_ACQUIRE_MOVING_WINDOW`, as a Lua
function on the library's own keys) for the user's then the org's window, then takes the slot;
and, for an admitted turn only, runs what the caller asks next in the same script (`Then`: the
turn store claims the idempotency key there, so a turn's admission and claim are one round
trip, and a refused turn still claims nothing).
Being one script it is all or nothing: a limit that refuses gives back what the limits before
it took (the hit just pushed on a window's list is its head), so a turn the org's window or the
slot refuses costs the user none of their rate. Only a rate refusal costs a second round trip
(the library's window stats, for `retry_after_s`). Freeing the slot happens after the turn's
last frame went out, off the turn's latency (bench/limit_checks.py).
Sockets per user are counted per replica in memory (see `SocketCounter`)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.storage.redis.bridge import RedisBridge
from limits.aio.strategies import MovingWindowRateLimiter

from switchboard_common.conversations import BUDGET_FIELDS, month_usage_key
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

# KEYS: month usage, user window, org window, active turns.
# ARGV: now, window seconds, user limit, org limit, deadline, concurrent limit, idempotency
# key, budget (-1: none), then the usage fields the budget counts.
# Returns {verdict, tokens used this month}; the verdict names the limit that refused.
# `acquire` is the library's script, unchanged: it pushes the hit only when admitting it, and
# trims the list to the limit, dropping only entries already outside the window, so popping
# the head undoes it exactly (nothing else runs in between).
_ACQUIRE = RedisBridge.SCRIPT_ACQUIRE_MOVING_WINDOW.decode()
_ADMIT = "local function acquire(KEYS, ARGV)\n" + _ACQUIRE + """
end
local used = 0
if tonumber(ARGV[8]) >= 0 then
  for i = 9, #ARGV do used = used + (tonumber(redis.call('HGET', KEYS[1], ARGV[i])) or 0) end
  if used >= tonumber(ARGV[8]) then return {'budget', used} end
end
if not acquire({KEYS[2]}, {ARGV[1], ARGV[3], ARGV[2], 1}) then return {'user', used} end
if not acquire({KEYS[3]}, {ARGV[1], ARGV[4], ARGV[2], 1}) then
  redis.call('LPOP', KEYS[2])
  return {'org', used}
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[4], ARGV[7]) then
  if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[6]) then
    redis.call('LPOP', KEYS[2])
    redis.call('LPOP', KEYS[3])
    return {'slot', used}
  end
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[7])
  redis.call('EXPIREAT', KEYS[4], math.ceil(tonumber(ARGV[5])))
end
return {'ok', used}
"""


# The admission above as a function, then the caller's script only for an admitted turn.
# ARGV[1], ARGV[2]: how many of KEYS and of the remaining ARGV are the admission's.
# Returns the admission's {verdict, used}, with the caller's reply third when admitted.
_ADMIT_THEN = """local function admit(KEYS, ARGV)
{admit}
end
local function after(KEYS, ARGV)
{then}
end
local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local ak, aa, tk, ta = {{}}, {{}}, {{}}, {{}}
for i = 1, #KEYS do if i <= nk then ak[i] = KEYS[i] else tk[i - nk] = KEYS[i] end end
for i = 3, #ARGV do if i - 2 <= na then aa[i - 2] = ARGV[i] else ta[i - 2 - na] = ARGV[i] end end
local verdict = admit(ak, aa)
if verdict[1] ~= 'ok' then return verdict end
return {{verdict[1], verdict[2], after(tk, ta)}}
"""


@dataclass(frozen=True)
class Then:
    """A script to run in the admission's round trip, for an admitted turn only: Lua that
    reads its own KEYS and ARGV and returns, with the keys and arguments of this call."""

    lua: str
    keys: list[str]
    args: list[Any]


def _overrides_key(org: str) -> str:
    return f"limits:{org}"


def _active_key(who: Identity) -> str:
    return f"limits:active:{who.org}:{who.user}"


@dataclass(frozen=True)
class Admitted:
    warning: BudgetWarning | None = None
    then: Any = None
    """The reply of the `Then` script, when one was given."""


class Limiter:
    def __init__(self, valkey: redis.Redis, valkey_url: str, defaults: OrgLimits,
                 cache_s: float = 5.0) -> None:
        self._r = valkey
        # The library's options are typed as scalars; a pool is what it documents for sharing.
        self._storage = RedisStorage(
            f"async+{valkey_url}", implementation="redispy",
            connection_pool=valkey.connection_pool)  # type: ignore[arg-type]
        self._window = MovingWindowRateLimiter(self._storage)
        self._admit: Any = valkey.register_script(_ADMIT)
        self._chained: dict[str, Any] = {}
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
    async def admit_turn(self, who: Identity, key: str, deadline_s: float,
                         then: Then | None = None) -> Admitted | Refusal:
        """Count one new turn of `who` (`key`: its idempotency key) against every limit, or
        say which refused it. An admitted turn holds a concurrency slot until `end_turn`
        (or its deadline). One round trip (see the module's docstring); a refused turn
        took nothing, and `then` ran only for an admitted one (its reply in `Admitted`)."""
        limits = await self.org_limits(who.org)
        per_user = RateLimitItemPerMinute(limits.turns_per_minute_user)
        per_org = RateLimitItemPerMinute(limits.turns_per_minute_org)
        user_ids = ("turns-user", who.org, who.user)
        org_ids = ("turns-org", who.org)
        budget = limits.monthly_token_budget
        now = time.time()
        keys = [month_usage_key(who.org), self._window_key(per_user, *user_ids),
                self._window_key(per_org, *org_ids), _active_key(who)]
        args = [now, per_user.get_expiry(), per_user.amount, per_org.amount,
                now + deadline_s, limits.concurrent_turns_user, key,
                -1 if budget is None else budget, *BUDGET_FIELDS]
        reply = (await self._admit(keys=keys, args=args) if then is None else
                 await self._script(then.lua)(keys=[*keys, *then.keys],
                                              args=[len(keys), len(args), *args, *then.args]))
        verdict, used, after = reply[0], reply[1], reply[2] if len(reply) > 2 else None
        match _s(verdict):
            case "user":
                return await self._rate(per_user, "turns_per_user", "turns for this user",
                                        *user_ids)
            case "org":
                return await self._rate(per_org, "turns_per_org", "turns for this org",
                                        *org_ids)
            case "slot":
                RATE_LIMIT_REFUSALS.labels("concurrent_turns_per_user").inc()
                return Refusal(ErrorCode.RATE_LIMITED, f"too many turns running at once: at "
                               f"most {limits.concurrent_turns_user} per user", 1.0)
            case "budget":
                RATE_LIMIT_REFUSALS.labels("org_tokens_month").inc()
                return budget_refusal(limits, used, utcnow())
        if budget is not None and budget_state(limits, used) == "warn":
            return Admitted(BudgetWarning(used, budget), after)
        return Admitted(then=after)

    def _script(self, then: str) -> Any:
        """The admission chained with `then`, registered once per distinct `then`."""
        script = self._chained.get(then)
        if script is None:
            script = self._chained[then] = self._r.register_script(
                _ADMIT_THEN.format(admit=_ADMIT, then=then))
        return script

    def _window_key(self, item: RateLimitItemPerMinute, *ids: str) -> str:
        """The key the library keeps this window under (what its `hit` would use)."""
        return self._storage.bridge.prefixed_key(item.key_for(*ids))

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
