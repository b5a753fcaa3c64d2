"""The gateway's `Limiter` against a real Valkey: a turn's admission is one round trip, it keeps
its rate windows where the `limits` library keeps them (so the library's own strategy sees the
same counts), and it is all or nothing: a turn refused by any limit takes nothing from the
others."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as redis
from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from switchboard_common.conversations import month_usage_key
from switchboard_common.envelope import utcnow
from switchboard_gateway.adapters.limits import Admitted, Limiter
from switchboard_gateway.adapters.store import TurnStore, idem_key
from switchboard_gateway.domain.identity import Identity
from switchboard_gateway.domain.limits import OrgLimits, Refusal, seconds_to_next_month
from switchboard_gateway.domain.turns import TurnRecord

pytestmark = pytest.mark.connected


@pytest.fixture
async def client(valkey_url: str) -> AsyncIterator[redis.Redis]:
    valkey = redis.Redis.from_url(valkey_url)
    yield valkey
    await valkey.aclose()


def limiter(client: redis.Redis, valkey_url: str, **limits: int) -> Limiter:
    return Limiter(client, valkey_url, OrgLimits.model_validate(limits))


async def remaining(client: redis.Redis, valkey_url: str, per_minute: int, *ids: str) -> int:
    """What the library itself says is left of a window (its own storage and strategy)."""
    storage = RedisStorage(f"async+{valkey_url}", implementation="redispy",
                           connection_pool=client.connection_pool)  # type: ignore[arg-type]
    stats = await MovingWindowRateLimiter(storage).get_window_stats(
        RateLimitItemPerMinute(per_minute), *ids)
    return stats.remaining


class CountingConnection(redis.Connection):
    """Counts what is sent to Valkey: one send per command, or per pipeline."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


async def test_admitting_a_turn_is_one_round_trip(valkey_url: str, org: str) -> None:
    counted = redis.Redis.from_url(valkey_url, connection_class=CountingConnection)
    lim = limiter(counted, valkey_url, monthly_token_budget=10**9)
    who = Identity(org=org, user="ana")
    await lim.admit_turn(who, "warm", 60)  # loads the script and caches the org's limits
    before = CountingConnection.sent
    assert isinstance(await lim.admit_turn(who, "k1", 60), Admitted)
    assert CountingConnection.sent - before == 1
    await counted.aclose()


async def test_a_turn_is_admitted_and_claimed_in_one_round_trip_and_refused_claims_nothing(
        valkey_url: str, org: str) -> None:
    """The turn store's claim runs inside the admission's script (`Then`): one round trip for
    both; a refused turn leaves its idempotency key unclaimed, so the client's re-send with
    the same key can start it later."""
    counted = redis.Redis.from_url(valkey_url, connection_class=CountingConnection)
    lim = limiter(counted, valkey_url, concurrent_turns_user=1)
    store = TurnStore(counted, ttl_s=60)
    who = Identity(org=org, user="ana")

    def record(turn_id: str) -> TurnRecord:
        return TurnRecord(turn_id=turn_id, org=org, user="ana", client_id="sarah",
                          conversation_id="main", deadline_at=utcnow() + timedelta(minutes=1))

    await lim.admit_turn(who, "warm", 60, store.claim_step(record("t0"), "warm"))
    await lim.end_turn(who, "warm")
    before = CountingConnection.sent
    first = await lim.admit_turn(who, "k1", 60, store.claim_step(record("t1"), "k1"))
    assert CountingConnection.sent - before == 1
    assert isinstance(first, Admitted) and first.then is None  # claimed: a new turn
    assert (await store.claimed(record("t1"), first.then)).turn_id == "t1"  # type: ignore[union-attr]
    again = await lim.admit_turn(who, "k1", 60, store.claim_step(record("t2"), "k1"))
    assert isinstance(again, Admitted) and again.then == b"t1"  # the re-send's turn is t1
    assert (await store.claimed(record("t2"), again.then)).turn_id == "t1"  # type: ignore[union-attr]
    refused = await lim.admit_turn(who, "k2", 60, store.claim_step(record("t3"), "k2"))
    assert isinstance(refused, Refusal)  # the one slot is t1's
    assert await counted.get(idem_key(org, "ana", "k2")) is None
    assert await store.get("t3") is None
    await counted.aclose()


async def test_the_windows_are_the_librarys_own(client: redis.Redis, valkey_url: str,
                                               org: str) -> None:
    lim = limiter(client, valkey_url, turns_per_minute_user=3)
    who = Identity(org=org, user="ana")
    for i in range(3):
        assert isinstance(await lim.admit_turn(who, f"k{i}", 60), Admitted)
        await lim.end_turn(who, f"k{i}")
    assert await remaining(client, valkey_url, 3, "turns-user", org, "ana") == 0
    assert await remaining(client, valkey_url, 1200, "turns-org", org) == 1197
    refused = await lim.admit_turn(who, "k3", 60)
    assert isinstance(refused, Refusal) and refused.code == "rate_limited"
    assert 0 < refused.retry_after_s <= 60


async def test_a_turn_the_org_window_refuses_costs_the_user_nothing(
        client: redis.Redis, valkey_url: str, org: str) -> None:
    lim = limiter(client, valkey_url, turns_per_minute_user=5, turns_per_minute_org=2)
    ana, ben = Identity(org=org, user="ana"), Identity(org=org, user="ben")
    assert isinstance(await lim.admit_turn(ana, "a1", 60), Admitted)
    assert isinstance(await lim.admit_turn(ben, "b1", 60), Admitted)
    refused = await lim.admit_turn(ana, "a2", 60)
    assert isinstance(refused, Refusal) and "this org" in refused.message
    assert await remaining(client, valkey_url, 5, "turns-user", org, "ana") == 4
    assert await remaining(client, valkey_url, 2, "turns-org", org) == 0
    assert await client.zcard(f"limits:active:{org}:ana") == 1


async def test_a_turn_refused_a_slot_costs_no_rate(client: redis.Redis, valkey_url: str,
                                                  org: str) -> None:
    lim = limiter(client, valkey_url, concurrent_turns_user=1)
    who = Identity(org=org, user="ana")
    assert isinstance(await lim.admit_turn(who, "k1", 60), Admitted)
    refused = await lim.admit_turn(who, "k2", 60)
    assert isinstance(refused, Refusal) and "at once" in refused.message
    assert await remaining(client, valkey_url, 120, "turns-user", org, "ana") == 119
    assert await remaining(client, valkey_url, 1200, "turns-org", org) == 1199
    # A re-send of the running turn keeps its own slot.
    assert isinstance(await lim.admit_turn(who, "k1", 60), Admitted)


async def test_a_turn_the_budget_stops_takes_nothing(client: redis.Redis, valkey_url: str,
                                                    org: str) -> None:
    lim = limiter(client, valkey_url, monthly_token_budget=100)
    who = Identity(org=org, user="ana")
    await client.hset(month_usage_key(org), mapping={"input_tokens": 50, "output_tokens": 35,
                                                     "cost_usd_micros": 999})
    warned = await lim.admit_turn(who, "k1", 60)
    assert isinstance(warned, Admitted) and warned.warning is not None
    assert warned.warning.used_tokens == 85
    await lim.end_turn(who, "k1")
    await client.hincrby(month_usage_key(org), "cache_read_input_tokens", 15)
    stopped = await lim.admit_turn(who, "k2", 60)
    assert isinstance(stopped, Refusal) and stopped.code == "quota_exceeded"
    assert await remaining(client, valkey_url, 120, "turns-user", org, "ana") == 119
    assert await client.zcard(f"limits:active:{org}:ana") == 0


async def test_the_budget_starts_again_each_month(client: redis.Redis, valkey_url: str,
                                                 org: str) -> None:
    """Usage is kept per calendar month (UTC): last month's spending stops nothing now, and a
    stopped org is told to retry when the next month starts."""
    lim = limiter(client, valkey_url, monthly_token_budget=100)
    who = Identity(org=org, user="ana")
    now = utcnow()
    last_month = now.replace(day=1) - timedelta(days=1)
    await client.hset(month_usage_key(org, last_month), "output_tokens", 10_000)
    assert isinstance(await lim.admit_turn(who, "k1", 60), Admitted)
    await client.hset(month_usage_key(org, now), "output_tokens", 100)
    stopped = await lim.admit_turn(who, "k2", 60)
    assert isinstance(stopped, Refusal) and stopped.code == "quota_exceeded"
    assert abs(stopped.retry_after_s - seconds_to_next_month(now)) < 5
