"""The gateway's thread tails in Valkey: one hash per client that expires, a tail another
version wrote that no longer reads is skipped (never a refused upload), and drop clears it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis.asyncio as redis

from switchboard_common.memory_threads import ThreadTail
from switchboard_gateway.adapters.threads import TTL_S, ThreadTails

pytestmark = pytest.mark.connected

AT = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


async def test_tails_round_trip_expire_and_drop(valkey_url: str, org: str) -> None:
    client = redis.Redis.from_url(valkey_url)
    tails = ThreadTails(client)
    try:
        assert await tails.load(org, "c1", set()) == {}
        kept = {"turn/": ThreadTail(event_id="D1:2", text="Biscuit!", occurred_at=AT),
                "turn/u1": ThreadTail(event_id="n1", text="mine", occurred_at=AT)}
        await tails.save(org, "c1", kept)
        await client.hset(f"ingest:thread:{org}:c1", "note/", b'{"text": "older layout"}')
        assert await tails.load(org, "c1", {"turn/", "turn/u1", "note/", "email/"}) == kept
        assert await tails.load(org, "c2", {"turn/"}) == {}
        assert 0 < await client.ttl(f"ingest:thread:{org}:c1") <= TTL_S
        await tails.drop(org, "c1")
        assert await tails.load(org, "c1", {"turn/"}) == {}
    finally:
        await client.aclose()
