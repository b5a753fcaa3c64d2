"""turns.requested -> (per-conversation queue) -> model.requested.

One worker per replica: turn requests are accepted in stream order, which is what keeps
a conversation's turns in order (see adapters/turn_queue.py). Accepting is a few Valkey round
trips and one publish, so one worker keeps up. Idempotent: the model request's Nats-Msg-Id is
(turn, iteration) and re-enqueueing an active or waiting turn changes nothing. Exceptions nack
(redelivered up to max_deliver, then dead-lettered); malformed requests are dead-lettered."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.annotations import NatsMessage

from switchboard_common.streams import TURNS
from switchboard_common.turns import TurnRequest
from switchboard_context.deps import Flow

CONSUMER = "context-turns"


async def on_turn_requested(turn: TurnRequest, flow: Flow, message: NatsMessage) -> None:
    await flow.accept(turn, order=message.raw_message.metadata.sequence.stream)


def router() -> NatsRouter:
    """A fresh router per broker: FastStream binds subscribers to the broker that
    includes them, so two apps in one process (tests) must not share one."""
    r = NatsRouter()
    r.subscriber(
        "turns.requested.*",
        stream=JStream(TURNS.name, declare=False),
        durable=CONSUMER,
        pull_sub=PullSub(batch_size=16, timeout=5.0),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="context/turns.requested",
        description="A user message to answer: queued per conversation, then the prompt is built "
                    "and llm_stream is asked for a model call.",
    )(on_turn_requested)
    return r
