"""Valkey state of the trigger intake: one background turn per event id, and the per-client
and per-org rate windows.

- `trg:claim:{org}:{client}:{event}`: the JetStream stream sequence of the ingest message
  whose delivery queued the event's background turn. It is set by the turn queue's enqueue
  script together with queueing the turn (`once`), so a crash can never leave a claim
  without a queued turn. A re-sent event (another message) finds it and stops there; a
  redelivery of the claiming message itself (its handler died or failed before the ack)
  queues the same turn again, which starts it if it never started (the queue and the model
  request's Nats-Msg-Id make that idempotent) and does nothing once it ran. Kept as long as
  the ingest stream keeps events (7 days), so any redelivery still finds it.
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

    @staticmethod
    def once(org: str, client: str, event_id: str, delivery: int) -> tuple[str, str, int]:
        """The enqueue script's `once` for this event, claimed by the ingest message with
        stream sequence `delivery`."""
        return f"trg:claim:{org}:{client}:{event_id}", str(delivery), CLAIM_TTL_S

    async def claimed_by_another(self, org: str, client: str, event_id: str, delivery: int
                                 ) -> bool:
        """A cheap early exit for re-sent events (the enqueue script decides for good)."""
        held = await self._r.get(f"trg:claim:{org}:{client}:{event_id}")
        if held is None:
            return False
        return (held.decode() if isinstance(held, bytes) else str(held)) != str(delivery)

    async def admit(self, org: str, client: str) -> float | None:
        """None: within both limits (counted). Otherwise seconds until the window turns."""
        now = time.time()
        window = int(now // WINDOW_S)
        ok = await self._admit(keys=[f"trg:rate:{org}:{client}:{window}",
                                     f"trg:rate:{org}:{window}"],
                               args=[self._per_client, self._per_org, WINDOW_S * 2])
        return None if ok else (window + 1) * WINDOW_S - now
