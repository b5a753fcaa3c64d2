"""A turn that needs memory while memory_indexer is not there yet (loading its model and
index) gets a typed, retryable `warming_up` error instead of an answer silently made without
the client's memory."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from switchboard_common.envelope import utcnow
from switchboard_common.turns import TurnRequest
from switchboard_context.main import build_app
from switchboard_context.settings import Settings
from tests.connected.helpers import Collector, nats_client

pytestmark = pytest.mark.connected


async def test_memory_turn_before_memory_indexer_is_up_gets_warming_up(
        nats_url: str, valkey_url: str, org: str) -> None:
    app = build_app(Settings(nats_url=nats_url, valkey_url=valkey_url, tools=False))
    await app.start()
    try:
        async with nats_client(nats_url) as nc:
            turn_id = uuid.uuid4().hex
            events = Collector()
            await nc.subscribe(f"turns.events.{org}.{turn_id}", cb=events.handle)
            turn = TurnRequest(org_id=org, turn_id=turn_id, user_id="va1", client_id="sarah",
                               text="What did we discuss last time about the budget plan?",
                               idempotency_key=turn_id,
                               deadline_at=utcnow() + timedelta(seconds=30))
            await nc.jetstream().publish(f"turns.requested.{org}", turn.model_dump_json().encode(),
                                         headers={"Nats-Msg-Id": f"turn:{turn_id}"})
            items = await events.wait_for(lambda items: items, timeout=10)
    finally:
        await app.stop()
    assert items[0]["type"] == "error" and items[0]["code"] == "warming_up", items
    assert items[0]["retryable"] is True and items[0]["seq"] == 1
