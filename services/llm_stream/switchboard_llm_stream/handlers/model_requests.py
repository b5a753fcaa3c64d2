"""model.requested -> streamed deltas + model.completed.

Ack policy is manual and explicit at this edge: the call's `Decision` says ack (the outcome,
success or typed failure, is published) or nak with a backoff (a retryable provider failure
with attempts left). An unexpected exception is nak'ed with backoff too (bounded by
max_deliver, then the dead-letter stream); malformed requests are dead-lettered and
terminated at once. Consumed by a `PullWorker` (on every turn's path), declared to FastStream
only for the AsyncAPI document."""

from __future__ import annotations

from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client as NatsClient

from switchboard_common.model import ModelRequest
from switchboard_common.permissions import inbox_prefix
from switchboard_common.pull_worker import Delivery, PullWorker
from switchboard_common.streams import MODEL, ConsumerSpec
from switchboard_llm_stream.calls import ModelCalls

CONSUMER = "llm-stream"


def worker(nc: NatsClient, spec: ConsumerSpec, calls: ModelCalls,
           max_concurrency: int) -> PullWorker[ModelRequest]:
    """As many requests fetched as calls may run: a fetched message waits unacked (no
    in_progress) until a worker is free, so fetching ahead of the workers only risks needless
    redeliveries."""
    async def on_model_requested(request: ModelRequest, message: Delivery) -> None:
        attempt = message.raw_message.metadata.num_delivered or 1
        decision = await calls.run(request, attempt, message.in_progress)
        if decision.nak_delay_s is None:
            await message.ack()
        else:
            await message.nack(delay=decision.nak_delay_s)

    return PullWorker(nc, spec, ModelRequest, on_model_requested, service="llm_stream",
                      inbox=f"{inbox_prefix('llm_stream')}.pull.{CONSUMER}",
                      workers=max_concurrency)


async def on_model_requested(request: ModelRequest) -> None:  # documentation only
    del request


def document(broker: NatsBroker, max_concurrency: int) -> None:
    broker.subscriber(
        "model.requested.*",
        stream=JStream(MODEL.name, declare=False),
        durable=CONSUMER,
        pull_sub=PullSub(batch_size=max_concurrency, timeout=5.0),
        title="llm_stream/model.requested",
        description="Stream one completion: deltas on turns.events, the outcome on "
                    "model.completed.",
    )(on_model_requested)
