"""Valkey state of the trigger intake: one background turn per event id, and the per-client
and per-org rate windows.

- `trg:claim:{org}:{client}:{event}`: set once (SET NX) when an event's background turn is
  started; a redelivered or re-sent event finds it and stops there. Kept as long as the
  ingest stream keeps events (7 days), so any redelivery still finds it.
- `trg:rate:{org}[:{client}]:{window}`: fixed one-minute windows (INCR + EXPIRE in one
  script, both counters at once, so a refused trigger counts in neither).
"""

from __future__ import annotations

import time

import redis.asyncio as redis

CLAIM_TTL_S = 8 * 24 * 3600
WINDOW_S = 60

# KEYS: client window, org window. ARGV: client limit, org limit, ttl.
# Returns 1 when both counters had room (and were incremented), else 0.
_ADMIT = """
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
local o = tonumber(redis.call('GET', KEYS[2]) or '0')
if c >= tonumber(ARGV[1]) or o >= tonumber(ARGV[2]) then return 0 end
redis.call('INCR', KEYS[1]); redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('INCR', KEYS[2]); redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""


class TriggerGate:
    def __init__(self, client: redis.Redis, per_client_per_min: int, per_org_per_min: int
                 ) -> None:
        self._r = client
        self._per_client = per_client_per_min
        self._per_org = per_org_per_min
        self._admit = client.register_script(_ADMIT)

    async def claimed(self, org: str, client: str, event_id: str) -> bool:
        return bool(await self._r.exists(f"trg:claim:{org}:{client}:{event_id}"))

    async def claim(self, org: str, client: str, event_id: str, turn_id: str) -> bool:
        """True for the first claimant of this event; later ones must do nothing."""
        return bool(await self._r.set(f"trg:claim:{org}:{client}:{event_id}", turn_id,
                                      nx=True, ex=CLAIM_TTL_S))

    async def release(self, org: str, client: str, event_id: str) -> None:
        """The turn could not be started: let the redelivery claim it again."""
        await self._r.delete(f"trg:claim:{org}:{client}:{event_id}")

    async def admit(self, org: str, client: str) -> float | None:
        """None: within both limits (counted). Otherwise seconds until the window turns."""
        now = time.time()
        window = int(now // WINDOW_S)
        ok = await self._admit(keys=[f"trg:rate:{org}:{client}:{window}",
                                     f"trg:rate:{org}:{window}"],
                               args=[self._per_client, self._per_org, WINDOW_S * 2])
        return None if ok else (window + 1) * WINDOW_S - now
