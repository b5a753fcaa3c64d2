"""Failed handlers are retried with backoff, then dead-lettered, for messages as services
really publish them (publish_command sets Nats-Msg-Id and, through FastStream,
Nats-Expected-Stream): a handler that always fails gets its message copied to SB_DLQ once
deliveries are exhausted, a malformed one at once, and the work queue is left empty."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from faststream import AckPolicy
from faststream.nats import JStream, PullSub

from switchboard_common.bus import (
    connect_with_backoff,
    make_broker,
    prepare_jetstream,
    publish_command,
)
from switchboard_common.dead_letter import dlq_subject, watch_dead_letters
from switchboard_common.envelope import utcnow
from switchboard_common.metrics import CONSUMER_PENDING, DLQ_DEPTH
from switchboard_common.model import ModelRequest
from switchboard_common.ops import jetstream_gauges
from switchboard_common.streams import DLQ, MODEL, ConsumerSpec
from switchboard_common.turns import TurnRequest

pytestmark = pytest.mark.connected

CONSUMER = "test-poison"


async def test_exhausted_and_malformed_messages_reach_the_dlq_and_leave_the_queue(
        nats_url: str, org: str) -> None:
    spec = ConsumerSpec(MODEL, CONSUMER, "model.requested.>", ack_wait_s=1, max_deliver=2)
    broker = make_broker(nats_url, "test")
    attempts: list[str] = []
    times: list[float] = []

    @broker.subscriber("model.requested.*", stream=JStream(MODEL.name, declare=False),
                       durable=CONSUMER, pull_sub=PullSub(batch_size=1, timeout=1.0),
                       ack_policy=AckPolicy.NACK_ON_ERROR)
    async def always_fails(request: ModelRequest) -> None:
        attempts.append(request.turn_id)
        times.append(asyncio.get_running_loop().time())
        raise RuntimeError("this handler never succeeds")

    await connect_with_backoff(broker, 5)
    js = await prepare_jetstream(broker, (spec,))
    await watch_dead_letters(broker.connection, (spec,))
    await broker.start()
    try:
        poison = ModelRequest(org_id=org, turn_id="t1", user_id="u", client_id="c",
                              conversation_id="main", system="", messages=[],
                              deadline_at=utcnow() + timedelta(seconds=60))
        await publish_command(broker, poison, f"model.requested.{org}", msg_id="model:t1:0",
                              stream=MODEL.name)
        # Valid JSON of another contract: fails validation, dead-lettered without retries.
        wrong = TurnRequest(org_id=org, turn_id="t2", user_id="u", client_id="c", text="x",
                            idempotency_key="k", deadline_at=utcnow())
        await publish_command(broker, wrong, f"model.requested.{org}", msg_id="model:t2:0",
                              stream=MODEL.name)
        subject = dlq_subject(MODEL.name, CONSUMER)
        async with asyncio.timeout(20):
            while (await js.stream_info(DLQ.name, subjects_filter=subject)).state.messages < 2:
                await asyncio.sleep(0.1)
        assert attempts == ["t1", "t1"]  # max_deliver, then the DLQ
        # A failure is nak'ed with backoff, not redelivered at once (bus.redelivery_delay).
        assert times[1] - times[0] >= 0.45
        copies = {}
        for seq in (1, 2):
            msg = await js.get_msg(DLQ.name, seq)
            assert msg.headers is not None
            copies[msg.headers["Sb-Dlq-Reason"]] = msg.headers
        assert set(copies) == {"MAX_DELIVERIES", "INVALID_MESSAGE"}
        for headers in copies.values():
            assert "Nats-Expected-Stream" not in headers
            assert headers["Sb-Dlq-Stream"] == MODEL.name
        assert copies["MAX_DELIVERIES"]["Sb-Dlq-Msg-Id"] == "model:t1:0"
        # Nothing is left behind in the work queue.
        async with asyncio.timeout(5):
            while (await js.stream_info(MODEL.name)).state.messages:
                await asyncio.sleep(0.1)
        # What /metrics reports for this consumer.
        await jetstream_gauges(lambda: broker.connection, (spec,))()
        assert DLQ_DEPTH.labels(MODEL.name, CONSUMER)._value.get() == 2
        assert CONSUMER_PENDING.labels(MODEL.name, CONSUMER, "pending")._value.get() == 0
    finally:
        await broker.stop()
