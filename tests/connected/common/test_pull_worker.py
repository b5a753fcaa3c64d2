"""PullWorker (switchboard_common.pull_worker) against a real JetStream: messages arrive at once
also after the standing pull request expired and was renewed, no more than the window is held,
one worker keeps stream order, a failure is nak'ed with backoff and redelivered, a malformed
message goes to the dead-letter stream at once, and stopping gives held messages back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import nats
import pytest
from nats.aio.client import Client as NatsClient

from switchboard_common.dead_letter import dlq_subject
from switchboard_common.envelope import utcnow
from switchboard_common.model import ModelRequest
from switchboard_common.pull_worker import Delivery, PullWorker
from switchboard_common.streams import DLQ, MODEL, ConsumerSpec, ensure_consumer, ensure_streams

pytestmark = pytest.mark.connected


def request(org: str, turn: str) -> ModelRequest:
    return ModelRequest(org_id=org, turn_id=turn, user_id="u", client_id="c",
                        conversation_id="main", system="", messages=[],
                        deadline_at=utcnow() + timedelta(seconds=60))


async def publish(nc: NatsClient, org: str, turn: str) -> None:
    await nc.jetstream().publish(f"model.requested.{org}",
                                 request(org, turn).model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": f"model:{turn}:0"})


async def setup(nats_url: str, name: str, **spec: float) -> tuple[NatsClient, ConsumerSpec]:
    nc = await nats.connect(nats_url)
    consumer = ConsumerSpec(MODEL, name, "model.requested.>", **spec)  # type: ignore[arg-type]
    await ensure_streams(nc.jetstream(), (MODEL, DLQ))
    await ensure_consumer(nc.jetstream(), consumer)
    return nc, consumer


async def test_messages_arrive_at_once_across_expired_pull_requests_in_order(
        nats_url: str, org: str) -> None:
    nc, spec = await setup(nats_url, "test-worker-order")
    got: list[tuple[str, float]] = []
    held_max = 0
    active = 0

    async def handle(req: ModelRequest, message: Delivery) -> None:
        nonlocal held_max, active
        active += 1
        held_max = max(held_max, active)
        got.append((req.turn_id, asyncio.get_running_loop().time()))
        await asyncio.sleep(0)
        active -= 1
        await message.ack()

    worker = PullWorker(nc, spec, ModelRequest, handle, service="test",
                        inbox="_INBOX.test.pull", window=4, expires_s=1.0)
    await worker.start()
    try:
        loop = asyncio.get_running_loop()
        sent: list[float] = []
        for i in range(24):  # spread over two expiries of the standing request
            sent.append(loop.time())
            await publish(nc, org, f"t{i}")
            await asyncio.sleep(0.1)
        for i in range(24, 40):  # a burst, four windows long
            sent.append(loop.time())
            await publish(nc, org, f"t{i}")
        async with asyncio.timeout(10):
            while len(got) < 40:
                await asyncio.sleep(0.01)
        assert [turn for turn, _ in got] == [f"t{i}" for i in range(40)]  # one worker: order
        assert held_max == 1
        # Never waits for the standing request to expire: not when one expired, not when a
        # window was used up.
        lags = [at - sent[i] for i, (_, at) in enumerate(got)]
        assert max(lags) < 0.6, lags
    finally:
        await worker.stop(1.0)
        await nc.close()


async def test_failure_is_retried_with_backoff_and_malformed_goes_to_the_dlq(
        nats_url: str, org: str) -> None:
    nc, spec = await setup(nats_url, "test-worker-fail", ack_wait_s=5, max_deliver=3)
    times: list[float] = []

    async def handle(req: ModelRequest, message: Delivery) -> None:
        times.append(asyncio.get_running_loop().time())
        if len(times) == 1:
            raise RuntimeError("first delivery fails")

    worker = PullWorker(nc, spec, ModelRequest, handle, service="test",
                        inbox="_INBOX.test.pull2", workers=2, auto_ack=True)
    await worker.start()
    try:
        await publish(nc, org, "t1")
        await nc.jetstream().publish(f"model.requested.{org}", b'{"not": "a request"}',
                                     headers={"Nats-Msg-Id": "model:bad:0"})
        js = nc.jetstream()
        async with asyncio.timeout(10):
            while len(times) < 2 or (await js.stream_info(MODEL.name)).state.messages:
                await asyncio.sleep(0.05)
        assert times[1] - times[0] >= 0.45  # nak'ed with backoff, not redelivered at once
        subject = dlq_subject(MODEL.name, spec.name)
        info = await js.stream_info(DLQ.name, subjects_filter=subject)
        assert info.state.messages == 1
    finally:
        await worker.stop(1.0)
        await nc.close()


async def test_stop_gives_held_messages_back(nats_url: str, org: str) -> None:
    nc, spec = await setup(nats_url, "test-worker-stop", ack_wait_s=30)
    started = asyncio.Event()

    async def slow(req: ModelRequest, message: Delivery) -> None:
        started.set()
        await asyncio.sleep(0.3)
        await message.ack()

    worker = PullWorker(nc, spec, ModelRequest, slow, service="test",
                        inbox="_INBOX.test.pull3", window=5)
    await worker.start()
    for i in range(5):
        await publish(nc, org, f"s{i}")
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    await worker.stop(2.0)  # the running one finishes, four held ones are nak'ed
    handled: list[str] = []

    async def record(req: ModelRequest, message: Delivery) -> None:
        handled.append(req.turn_id)

    second = PullWorker(nc, spec, ModelRequest, record, service="test",
                        inbox="_INBOX.test.pull4", window=5, auto_ack=True)
    await second.start()
    try:
        async with asyncio.timeout(5):  # long before ack_wait: they were given back
            while len(handled) < 4:
                await asyncio.sleep(0.02)
        assert sorted(handled) == [f"s{i}" for i in range(1, 5)]
    finally:
        await second.stop(1.0)
        await nc.close()
