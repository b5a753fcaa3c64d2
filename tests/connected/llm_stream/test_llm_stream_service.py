"""The llm_stream service in-process against a real NATS server and the Anthropic-protocol
fake, with the test playing context (model requests in, results out) and the gateway
(the turn's client stream)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from nats.aio.client import Client

from switchboard_common.bus import prepare_jetstream
from switchboard_common.envelope import utcnow
from switchboard_common.errors import ErrorCode
from switchboard_common.model import ChatMessage, ModelRequest, ModelResult, model_msg_id
from switchboard_common.turns import Delta, TurnCancel, turn_cancel_subject
from switchboard_llm_stream.handlers.model_requests import CONSUMER
from switchboard_llm_stream.main import build_app, consumers
from switchboard_llm_stream.settings import Settings
from tests.connected.helpers import Collector, nats_client
from tests.fakes.fake_anthropic import FakeAnthropic

pytestmark = pytest.mark.connected


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def settings(nats_url: str, fake: FakeAnthropic) -> Settings:
    return Settings(nats_url=nats_url, anthropic_api_key="sk-test",
                    anthropic_base_url=fake.base_url, ack_wait_s=2, max_deliver=3,
                    max_provider_attempts=2, retry_backoff_s=0.05, provider_timeout_s=5,
                    shutdown_grace_s=1)


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[None]:
    app = build_app(settings)
    await app.start()
    yield
    await app.stop()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    async with nats_client(nats_url) as client:
        yield client


def request(org: str, turn: str, text: str, *, deadline_s: float = 30, **kw: Any
            ) -> ModelRequest:
    return ModelRequest(org_id=org, turn_id=turn, user_id="va1", client_id="sarah",
                        conversation_id="main", system="You are a test assistant.",
                        messages=[ChatMessage(role="user", content=text)],
                        deadline_at=utcnow() + timedelta(seconds=deadline_s), **kw)


async def send(nc: Client, req: ModelRequest) -> None:
    await nc.jetstream().publish(f"model.requested.{req.org_id}", req.model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": model_msg_id(req.turn_id, 0)})


async def watch(nc: Client, org: str, turn: str) -> Collector:
    events = Collector()
    await nc.subscribe(f"turns.events.{org}.{turn}", cb=events.handle)
    return events


class Results:
    """Plays the context service: pulls model.completed.<org> and acks."""

    def __init__(self, nc: Client, org: str) -> None:
        self._nc, self._org = nc, org
        self._sub: Any = None

    async def next(self, timeout: float = 10) -> ModelResult:
        if self._sub is None:
            self._sub = await self._nc.jetstream().pull_subscribe(
                f"model.completed.{self._org}", durable=f"ctx-{self._org}", stream="SB_RESULTS")
        msgs = await self._sub.fetch(1, timeout=timeout)
        await msgs[0].ack()
        return ModelResult.model_validate_json(msgs[0].data)


def seqs(items: list[dict[str, Any]]) -> list[int]:
    return [item["seq"] for item in items]


async def test_answer_streams_deltas_in_order_then_the_result(
        service: None, nc: Client, org: str, fake: FakeAnthropic) -> None:
    events = await watch(nc, org, "t1")
    await send(nc, request(org, "t1", "[[fake tokens=8]] what is on today"))
    result = await Results(nc, org).next()
    assert result.error is None and result.provider == "anthropic"
    assert result.attempts == 1 and result.stop_reason == "end_turn"
    assert result.usage.output_tokens == 8 and result.usage.input_tokens > 0
    assert result.model == "claude-sonnet-4-6"  # the configured default
    # The 8 tokens came in one read: they may share deltas; the seq has no gap.
    items = await events.wait_for(lambda items: len(items) == result.last_seq)
    assert 1 <= result.last_seq <= 8
    assert [Delta.model_validate(i).seq for i in items] == list(range(1, result.last_seq + 1))
    assert "".join(i["text"] for i in items) == result.text
    assert fake.last_request["system"][0]["cache_control"] == {"type": "ephemeral"}
    await asyncio.sleep(0.2)
    info = await nc.jetstream().stream_info("SB_MODEL")
    assert info.state.messages == 0  # acked: the work queue is empty


async def test_paced_tokens_go_out_one_per_delta_and_a_burst_shares_them(
        service: None, nc: Client, org: str) -> None:
    """A model's pace (tokens tens of ms apart) is relayed as it comes, one delta each;
    tokens that arrive together (one write holding 40 events) go out in fewer deltas, with
    the same text and no gap in the seq."""
    paced, burst = await watch(nc, org, "p1"), await watch(nc, org, "b1")
    results = Results(nc, org)
    await send(nc, request(org, "p1", "[[fake tokens=6 delay_ms=60]] one at a time"))
    slow = await results.next()
    await send(nc, request(org, "b1", "[[fake tokens=40]] all at once"))
    fast = await results.next()
    # One delta per token (a stall of this process longer than the gap could join two).
    assert slow.last_seq >= 5 and slow.usage.output_tokens == 6
    items = await paced.wait_for(lambda items: len(items) == slow.last_seq)
    assert "".join(i["text"] for i in items) == slow.text
    assert fast.usage.output_tokens == 40 and fast.last_seq < 40
    items = await burst.wait_for(lambda items: len(items) == fast.last_seq)
    assert seqs(items) == list(range(1, fast.last_seq + 1))
    assert "".join(i["text"] for i in items) == fast.text and len(fast.text.split()) == 40


async def test_twenty_turns_stream_at_once(service: None, nc: Client, org: str) -> None:
    started = time.monotonic()
    for i in range(20):
        await send(nc, request(org, f"c{i}", "[[fake tokens=10 delay_ms=60]] slow answer"))
    results = Results(nc, org)
    got = [await results.next() for _ in range(20)]
    # 20 x 10 deltas 60 ms apart take ~0.6 s in parallel; one at a time would take 12 s.
    assert time.monotonic() - started < 5
    assert sorted(r.turn_id for r in got) == sorted(f"c{i}" for i in range(20))
    assert all(r.error is None and r.last_seq == 10 for r in got)


async def test_mid_stream_failure_is_retried_with_turn_retry_and_continued_seq(
        service: None, nc: Client, org: str) -> None:
    events = await watch(nc, org, "t2")
    text = "[[fake tokens=6 error_event=overloaded_error after=3 times=1]] tell me"
    await send(nc, request(org, "t2", text))
    result = await Results(nc, org).next()
    items = await events.wait_for(lambda items: len(items) == result.last_seq)
    types = [i["type"] for i in items]
    at = types.index("turn_retry")
    assert types == ["delta"] * at + ["turn_retry"] + ["delta"] * (len(items) - at - 1)
    assert at >= 1 and len(items) > at + 1
    assert seqs(items) == list(range(1, len(items) + 1))
    assert "".join(i["text"] for i in items[:at]) == "Echo: tell me"  # the 3 before the error
    retry = items[at]
    assert retry["attempt"] == 2 and retry["reason"] == "provider_overloaded"
    assert result.error is None and result.attempts == 2
    assert result.text == "".join(i["text"] for i in items[at + 1:])
    assert result.usage.output_tokens == 6


async def test_a_retry_continues_the_seq_when_the_kept_events_are_gone(
        service: None, settings: Settings, nc: Client, org: str) -> None:
    """A restarted NATS lost SB_TURN_EVENTS: the retry still numbers after what this
    replica streamed, never inside the text the client shows."""
    await nc.jetstream().delete_stream("SB_TURN_EVENTS")
    try:
        events = await watch(nc, org, "t2b")
        text = "[[fake tokens=6 error_event=overloaded_error after=3 times=1]] lost events"
        await send(nc, request(org, "t2b", text))
        result = await Results(nc, org).next()
        items = await events.wait_for(lambda items: len(items) == result.last_seq)
    finally:
        await prepare_jetstream_for(nc, settings)
    types = [i["type"] for i in items]
    assert "turn_retry" in types and types.index("turn_retry") >= 1
    assert seqs(items) == list(range(1, len(items) + 1))
    assert result.error is None and result.attempts == 2


async def test_redelivery_after_a_crash_announces_retry_and_continues_seq(
        settings: Settings, nc: Client, org: str, fake: FakeAnthropic) -> None:
    """A process took the request, streamed 3 deltas and died: JetStream redelivers it."""
    js = nc.jetstream()
    await prepare_jetstream_for(nc, settings)
    req = request(org, "t3", "[[fake tokens=5]] crash test")
    await send(nc, req)
    sub = await js.pull_subscribe(f"model.requested.{org}", durable=CONSUMER,
                                  stream="SB_MODEL")
    first = (await sub.fetch(1, timeout=5))[0]
    for seq in (1, 2, 3):
        await nc.publish(f"turns.events.{org}.t3", Delta(
            org_id=org, turn_id="t3", seq=seq, text=f" partial{seq}").model_dump_json().encode())
    await nc.flush()
    await first.nak()  # what a lapsed ack_wait does, without waiting for it
    await sub.unsubscribe()

    events = await watch(nc, org, "t3")
    app = build_app(settings)
    await app.start()
    try:
        result = await Results(nc, org).next()
    finally:
        await app.stop()
    items = await events.wait_for(lambda items: len(items) == result.last_seq - 3)
    assert items[0]["type"] == "turn_retry" and items[0]["seq"] == 4
    assert items[0]["attempt"] == 2 and items[0]["reason"] == "redelivered"
    assert seqs(items) == list(range(4, result.last_seq + 1)) and len(items) >= 2
    assert result.attempts == 2 and result.error is None
    assert result.text == "".join(i["text"] for i in items[1:]) == "Echo: crash test Echo: crash"


async def prepare_jetstream_for(nc: Client, settings: Settings) -> None:
    """Streams and the service's consumer, as the service itself declares them."""
    from faststream.nats import NatsBroker

    broker = NatsBroker(settings.nats_url)
    await broker.connect()
    try:
        await prepare_jetstream(broker, consumers(settings))
    finally:
        await broker.stop()


async def test_retryable_failure_that_persists_becomes_the_turn_error(
        service: None, nc: Client, org: str, fake: FakeAnthropic) -> None:
    before = fake.request_count
    events = await watch(nc, org, "t4")
    await send(nc, request(org, "t4", "[[fake status=529]] busy"))
    result = await Results(nc, org).next()
    assert result.error is not None and result.error.code is ErrorCode.PROVIDER_OVERLOADED
    assert result.error.retryable and result.error.status == 529
    assert result.attempts == 2 and result.last_seq == 0 and result.text == ""
    assert fake.request_count - before == 2  # max_provider_attempts, no SDK retries
    assert events.items == []


async def test_non_retryable_failure_is_reported_at_once(
        service: None, nc: Client, org: str, fake: FakeAnthropic) -> None:
    before = fake.request_count
    await send(nc, request(org, "t5", "[[fake status=400]] bad"))
    result = await Results(nc, org).next()
    assert result.error is not None and result.error.code is ErrorCode.PROVIDER_BAD_REQUEST
    assert result.attempts == 1 and fake.request_count - before == 1


async def test_request_past_its_deadline_never_reaches_the_provider(
        service: None, nc: Client, org: str, fake: FakeAnthropic) -> None:
    before = fake.request_count
    await send(nc, request(org, "t6", "too late", deadline_s=-1))
    result = await Results(nc, org).next()
    assert result.error is not None and result.error.code is ErrorCode.PROVIDER_TIMEOUT
    assert not result.error.retryable
    assert fake.request_count == before


async def test_a_hanging_provider_is_abandoned_at_the_deadline(
        service: None, nc: Client, org: str) -> None:
    started = time.monotonic()
    events = await watch(nc, org, "t7")
    await send(nc, request(org, "t7", "[[fake tokens=9 hang_after=2]] stall", deadline_s=1))
    result = await Results(nc, org).next()
    assert result.error is not None and result.error.code is ErrorCode.PROVIDER_TIMEOUT
    # What was streamed before the stall stays the client's, and the seq says how far it got.
    items = await events.wait_for(lambda items: len(items) == result.last_seq)
    assert result.last_seq >= 1 and "".join(i["text"] for i in items) == "Echo: stall"
    assert time.monotonic() - started < 4


async def test_background_summary_streams_nothing_and_keeps_meta(
        service: None, nc: Client, org: str) -> None:
    events = await watch(nc, org, "t8")
    await send(nc, request(org, "t8", "[[fake tokens=4]] summarise", purpose="summary",
                           meta={"covers": "12"}))
    result = await Results(nc, org).next()
    assert result.purpose == "summary" and result.meta == {"covers": "12"}
    assert result.text and result.last_seq == 0
    await asyncio.sleep(0.2)
    assert events.items == []


async def test_a_long_answer_outlives_ack_wait_without_redelivery(
        settings: Settings, nc: Client, org: str) -> None:
    """in_progress every ack_wait/3 keeps JetStream from handing the request to another
    worker while it is still streaming."""
    app = build_app(settings.model_copy(update={"ack_wait_s": 1.0}))
    await app.start()
    try:
        events = await watch(nc, org, "t9")
        await send(nc, request(org, "t9", "[[fake tokens=6 delay_ms=300]] slowly"))
        result = await Results(nc, org).next()
    finally:
        await app.stop()
    assert result.error is None and result.attempts == 1 and result.last_seq == 6
    assert [i["type"] for i in events.items] == ["delta"] * 6


async def test_a_redelivery_while_the_call_still_runs_waits_for_it(
        settings: Settings, nc: Client, org: str, fake: FakeAnthropic,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Heartbeats lost (NATS was away longer than ack_wait): the request is delivered again
    while this replica still streams it. One call, one contiguous seq, one result."""
    monkeypatch.setattr(Settings, "heartbeat_s", property(lambda self: 60.0))
    app = build_app(settings.model_copy(update={"ack_wait_s": 0.5}))
    await app.start()
    try:
        before = fake.request_count
        events = await watch(nc, org, "t9b")
        await send(nc, request(org, "t9b", "[[fake tokens=6 delay_ms=300]] slowly"))
        result = await Results(nc, org).next()
        await asyncio.sleep(0.6)  # a second call would have streamed by now
    finally:
        await app.stop()
    assert result.error is None and result.attempts == 1 and result.last_seq == 6
    assert fake.request_count - before == 1
    assert [(i["type"], i["seq"]) for i in events.items] == [("delta", s) for s in range(1, 7)]
    stream = await nc.jetstream().stream_info("SB_MODEL")
    assert stream.state.messages == 0  # the delivery that waited was acked too


async def test_redelivery_of_a_finished_turn_is_dropped(
        service: None, nc: Client, org: str, fake: FakeAnthropic) -> None:
    await nc.publish(f"turns.events.{org}.t10", b'{"type":"turn_completed","seq":7}')
    await nc.flush()
    await asyncio.sleep(0.1)
    before = fake.request_count
    await send(nc, request(org, "t10", "already answered"))
    await asyncio.sleep(0.5)
    assert fake.request_count == before
    info = await nc.jetstream().stream_info("SB_MODEL")
    assert info.state.messages == 0  # acked, not left for redelivery


async def test_cancel_stops_the_stream_and_keeps_the_partial_answer(
        service: None, nc: Client, org: str) -> None:
    events = await watch(nc, org, "t9")
    await send(nc, request(org, "t9", "[[fake tokens=400 delay_ms=20]] talk a lot"))
    await events.wait_for(lambda items: len(items) >= 3)
    await nc.publish(turn_cancel_subject(org), TurnCancel(org_id=org, turn_id="t9")
                     .model_dump_json().encode())
    started = time.monotonic()
    result = await Results(nc, org).next()
    assert time.monotonic() - started < 3  # not the 8 s the whole answer takes
    assert result.error is None and result.stop_reason == "cancelled"
    assert not result.tool_calls and 3 <= result.last_seq < 400
    items = await events.wait_for(lambda items: len(items) == result.last_seq)
    assert "".join(i["text"] for i in items) == result.text
