"""turns.requested -> (per-conversation queue) -> model.requested.

Ordering and concurrency: one worker per replica takes turn requests in stream order and only
queues them (one Valkey script: the turn's place in its conversation). Building the prompt and
publishing the model request then run concurrently in the background, and the turn request is
acked only once that succeeded (manual ack): a crash before it means redelivery, and
re-queueing an already active turn starts it again (the model request's Nats-Msg-Id makes the
second publish a no-op). Failures nack (redelivered up to max_deliver, then dead-lettered);
malformed requests are dead-lettered at once (bus.reject_invalid)."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub

from switchboard_common.bus import Message, redelivery_delay
from switchboard_common.permissions import pull_inbox
from switchboard_common.streams import TURNS
from switchboard_common.turns import TurnRequest
from switchboard_context.deps import Flow

CONSUMER = "context-turns"
log = logging.getLogger(__name__)


async def on_turn_requested(turn: TurnRequest, flow: Flow, message: Message) -> None:
    try:
        start = await flow.accept(turn, order=message.raw_message.metadata.sequence.stream)
    except Exception:
        log.exception("turn %s could not be queued", turn.turn_id)
        await message.nack(delay=redelivery_delay(message))
        return
    if start is None:
        await message.ack()  # queued behind its conversation; started when its turn comes
        return
    flow.in_background(flow.start(start, accepted=turn), message)


def router() -> NatsRouter:
    """A fresh router per broker: FastStream binds subscribers to the broker that
    includes them, so two apps in one process (tests) must not share one."""
    r = NatsRouter()
    r.subscriber(
        "turns.requested.*",
        stream=JStream(TURNS.name, declare=False),
        durable=CONSUMER,
        pull_sub=PullSub(batch_size=1, timeout=5.0),  # see streams.PULL_NOTE
        inbox_prefix=pull_inbox("context"),
        ack_policy=AckPolicy.MANUAL,
        title="context/turns.requested",
        description="A user message to answer: queued per conversation, then the prompt is built "
                    "and llm_stream is asked for a model call.",
    )(on_turn_requested)
    return r
