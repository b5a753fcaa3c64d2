"""The context service in-process against real NATS and Valkey, with the test playing
gateway (turn requests) and llm_stream (model requests and results)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as redis

from switchboard_common.envelope import utcnow
from switchboard_common.errors import ErrorCode
from switchboard_common.model import ModelRequest, ModelResult, ProviderFailure
from switchboard_common.turns import TurnCompleted, TurnRequest, Usage
from switchboard_context.main import build_app
from switchboard_context.settings import Settings
from tests.connected.helpers import Collector, fetch_one, nats_client

pytestmark = pytest.mark.connected


@pytest.fixture
async def context_app(nats_url: str, valkey_url: str) -> AsyncIterator[None]:
    # No memory_indexer here: every request that could use memory would search it.
    app = build_app(Settings(nats_url=nats_url, valkey_url=valkey_url, ack_wait_s=2,
                             max_deliver=2, history_messages=4, memory_search=False))
    await app.start()
    yield
    await app.stop()


def turn(org: str, turn_id: str, text: str, client: str = "sarah") -> TurnRequest:
    return TurnRequest(org_id=org, turn_id=turn_id, user_id="va1", client_id=client,
                       text=text, idempotency_key=turn_id,
                       deadline_at=utcnow() + timedelta(seconds=60))


def result(req: ModelRequest, text: str, *, last_seq: int = 3) -> ModelResult:
    return ModelResult(org_id=req.org_id, turn_id=req.turn_id, user_id=req.user_id,
                       client_id=req.client_id, conversation_id=req.conversation_id,
                       provider="test", model="test-model", text=text, stop_reason="end_turn",
                       usage=Usage(input_tokens=10, output_tokens=3), last_seq=last_seq)


async def ask(nc, org: str, t: TurnRequest) -> ModelRequest:  # type: ignore[no-untyped-def]
    await nc.jetstream().publish(f"turns.requested.{org}", t.model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": f"turn:{t.turn_id}"})
    msg = await fetch_one(nc, "SB_MODEL", f"model.requested.{org}", "test-llm")
    return ModelRequest.model_validate_json(msg.data)


async def test_turn_becomes_model_request_then_stored_turn(
        context_app: None, nats_url: str, org: str, valkey: redis.Redis) -> None:
    async with nats_client(nats_url) as nc:
        req = await ask(nc, org, turn(org, "t1", "When is my flight?"))
        assert req.turn_id == "t1" and req.iteration == 0
        assert [m.content for m in req.messages] == ["When is my flight?"]
        assert "sarah" in req.system

        events = Collector()
        await nc.subscribe(f"turns.events.{org}.t1", cb=events.handle)
        await nc.jetstream().publish(f"model.completed.{org}",
                                     result(req, "Tomorrow at 9.").model_dump_json().encode())
        done = await events.wait_for(lambda items: items)
        assert done[0]["type"] == "turn_completed"
        assert done[0]["seq"] == 4 and done[0]["text"] == "Tomorrow at 9."
        assert done[0]["model"] == "test-model"

        history = await fetch_one(nc, "SB_HISTORY", f"turns.completed.{org}", "test-mem")
        completed = TurnCompleted.model_validate_json(history.data)
        assert completed.assistant_text == "Tomorrow at 9." and completed.client_id == "sarah"

        # The next turn's prompt carries the stored conversation.
        req2 = await ask(nc, org, turn(org, "t2", "And the hotel?"))
        assert [(m.role, m.content) for m in req2.messages] == [
            ("user", "When is my flight?"), ("assistant", "Tomorrow at 9."),
            ("user", "And the hotel?")]
        # ...and never another client's.
        req3 = await ask(nc, org, turn(org, "t3", "Hi", client="john"))
        assert [m.content for m in req3.messages] == ["Hi"]


async def test_redelivered_result_appends_once(context_app: None, nats_url: str, org: str,
                                               valkey: redis.Redis) -> None:
    async with nats_client(nats_url) as nc:
        req = await ask(nc, org, turn(org, "t1", "hello"))
        events = Collector()
        await nc.subscribe(f"turns.events.{org}.t1", cb=events.handle)
        body = result(req, "hi there").model_dump_json().encode()
        for _ in range(2):  # a redelivery is the same message again
            await nc.jetstream().publish(f"model.completed.{org}", body)
        await events.wait_for(lambda items: items)
        key = f"conv:{org}:va1:sarah:main:messages"
        for _ in range(20):
            if await valkey.llen(key) == 2:
                break
        assert await valkey.llen(key) == 2


async def test_a_turn_request_delivered_after_its_turn_finished_runs_nothing(
        context_app: None, nats_url: str, org: str) -> None:
    """The same request again once its turn is over (a redelivery, or a re-sent key's
    request past JetStream's duplicate window): no second model call, and the conversation
    is served on."""
    async with nats_client(nats_url) as nc:
        t1 = turn(org, "t1", "hello")
        req = await ask(nc, org, t1)
        events = Collector()
        await nc.subscribe(f"turns.events.{org}.t1", cb=events.handle)
        await nc.jetstream().publish(f"model.completed.{org}",
                                     result(req, "hi there").model_dump_json().encode())
        await events.wait_for(lambda items: items)
        await nc.jetstream().publish(f"turns.requested.{org}", t1.model_dump_json().encode(),
                                     headers={"Nats-Msg-Id": "turn:t1:again"})
        req2 = await ask(nc, org, turn(org, "t2", "and now?"))
        assert req2.turn_id == "t2"  # t1 was not asked for again (it would come first)
        assert [m.content for m in req2.messages] == ["hello", "hi there", "and now?"]


async def test_provider_failure_becomes_typed_client_error(
        context_app: None, nats_url: str, org: str) -> None:
    async with nats_client(nats_url) as nc:
        req = await ask(nc, org, turn(org, "t1", "hello"))
        events = Collector()
        await nc.subscribe(f"turns.events.{org}.t1", cb=events.handle)
        failed = result(req, "", last_seq=0).model_copy(update={"error": ProviderFailure(
            code=ErrorCode.PROVIDER_RATE_LIMITED, message="rate limited", retryable=True,
            status=429)})
        await nc.jetstream().publish(f"model.completed.{org}", failed.model_dump_json().encode())
        items = await events.wait_for(lambda items: items)
        assert items[0]["type"] == "error"
        assert items[0]["code"] == "provider_rate_limited" and items[0]["turn_id"] == "t1"


async def test_malformed_turn_is_dead_lettered_and_does_not_block(
        context_app: None, nats_url: str, org: str) -> None:
    async with nats_client(nats_url) as nc:
        js = nc.jetstream()
        await js.publish(f"turns.requested.{org}", b'{"org_id": "x", "text": 5}')
        req = await ask(nc, org, turn(org, "t9", "still served"))
        assert req.turn_id == "t9"
        dead = await fetch_one(nc, "SB_DLQ", "dlq.SB_TURNS.context-turns", "test-dlq")
        assert dead.data == b'{"org_id": "x", "text": 5}'
        assert dead.headers and dead.headers["Sb-Dlq-Reason"] == "INVALID_MESSAGE"
