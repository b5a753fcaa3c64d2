"""turns.requested -> (per-conversation queue) -> model.requested.

Ordering and concurrency: one worker per replica takes turn requests in stream order and only
queues them (one Valkey script: the turn's place in its conversation). Building the prompt and
publishing the model request then run concurrently in the background, and the turn request is
acked only once that succeeded (manual ack): a crash before it means redelivery, and
re-queueing an already active turn starts it again (the model request's Nats-Msg-Id makes the
second publish a no-op). Failures nack (redelivered up to max_deliver, then dead-lettered);
malformed requests are dead-lettered at once. Consumed by a `PullWorker` (on every turn's
path), declared to FastStream only for the AsyncAPI document."""

from __future__ import annotations

import logging

from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client as NatsClient

from switchboard_common.bus import redelivery_delay
from switchboard_common.permissions import inbox_prefix
from switchboard_common.pull_worker import Delivery, Handler, PullWorker
from switchboard_common.streams import TURNS, ConsumerSpec
from switchboard_common.turns import TurnRequest
from switchboard_context.flow import TurnFlow

CONSUMER = "context-turns"
WINDOW = 16
"""Requests fetched ahead of the one worker: queueing one is a single Valkey script, so a
held request waits milliseconds, far inside ack_wait."""
log = logging.getLogger(__name__)


def handler(flow: TurnFlow) -> Handler[TurnRequest]:
    async def on_turn_requested(turn: TurnRequest, message: Delivery) -> None:
        try:
            start, past = await flow.accept_reading(
                turn, order=message.raw_message.metadata.sequence.stream)
        except Exception:
            log.exception("turn %s could not be queued", turn.turn_id)
            await message.nack(delay=redelivery_delay(message.raw_message))
            return
        if not start:  # None: queued behind its conversation, started when its turn comes;
            await message.ack()  # TAKEN: the turn already finished (delivered again)
            return
        flow.in_background(flow.start(start, accepted=turn, past=past), message)

    return on_turn_requested


def worker(nc: NatsClient, spec: ConsumerSpec, flow: TurnFlow) -> PullWorker[TurnRequest]:
    return PullWorker(nc, spec, TurnRequest, handler(flow), service="context",
                      inbox=f"{inbox_prefix('context')}.pull.{CONSUMER}", window=WINDOW)


async def on_turn_requested(turn: TurnRequest) -> None:  # documentation only
    del turn


def document(broker: NatsBroker) -> None:
    broker.subscriber(
        "turns.requested.*",
        stream=JStream(TURNS.name, declare=False),
        durable=CONSUMER,
        pull_sub=PullSub(batch_size=WINDOW, timeout=5.0),
        title="context/turns.requested",
        description="A user message to answer: queued per conversation, then the prompt is built "
                    "and llm_stream is asked for a model call.",
    )(on_turn_requested)
