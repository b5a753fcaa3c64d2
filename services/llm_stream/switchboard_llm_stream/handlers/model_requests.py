"""model.requested -> streamed deltas + model.completed.

Ack policy is manual and explicit at this edge: the call's `Decision` says ack (the outcome,
success or typed failure, is published) or nak with a backoff (a retryable provider failure
with attempts left). An unexpected exception leaves the message unacked, so JetStream
redelivers it after ack_wait (bounded by max_deliver, then the dead-letter stream).
Malformed requests are dead-lettered and terminated by `bus.reject_invalid`."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub

from switchboard_common.bus import Message
from switchboard_common.model import ModelRequest
from switchboard_common.permissions import pull_inbox
from switchboard_common.streams import MODEL
from switchboard_llm_stream.deps import Calls

CONSUMER = "llm-stream"


def build_router(max_concurrency: int) -> NatsRouter:
    """The subscriber is declared here, not at import, because its concurrency is a setting."""
    router = NatsRouter()

    @router.subscriber(
        "model.requested.*",
        stream=JStream(MODEL.name, declare=False),
        durable=CONSUMER,
        # One message per fetch: a fetched message waits unacked (no in_progress) until a
        # worker is free, so fetching ahead of the workers only risks needless redeliveries;
        # and nats-py's multi-message fetch can time out with a bare asyncio.TimeoutError
        # that FastStream's pull loop logs as a crash.
        pull_sub=PullSub(batch_size=1, timeout=5.0),
        inbox_prefix=pull_inbox("llm_stream"),
        max_workers=max_concurrency,
        ack_policy=AckPolicy.MANUAL,
        title="llm_stream/model.requested",
        description="Stream one completion: deltas on turns.events, the outcome on "
                    "model.completed.",
    )
    async def on_model_requested(request: ModelRequest, message: Message,
                                 calls: Calls) -> None:
        attempt = message.raw_message.metadata.num_delivered or 1
        decision = await calls.run(request, attempt, message.in_progress)
        if decision.nak_delay_s is None:
            await message.ack()
        else:
            await message.nack(delay=decision.nak_delay_s)

    return router
