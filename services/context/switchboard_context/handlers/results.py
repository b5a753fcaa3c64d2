"""model.completed -> conversation append + the client's terminal event + turns.completed,
then the conversation's next turn. Safe to redeliver: the append is atomic and once-only,
turns.completed is deduplicated by Nats-Msg-Id, and a client ignores a second terminal event.
Acked once handled, nak'ed with backoff on failure. Consumed by a `PullWorker` (on every
turn's path), declared to FastStream only for the AsyncAPI document."""

from __future__ import annotations

from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client as NatsClient

from switchboard_common.model import ModelResult
from switchboard_common.permissions import inbox_prefix
from switchboard_common.pull_worker import Delivery, PullWorker
from switchboard_common.streams import RESULTS, ConsumerSpec
from switchboard_context.flow import TurnFlow

CONSUMER = "context-results"
WORKERS = 16


def worker(nc: NatsClient, spec: ConsumerSpec, flow: TurnFlow) -> PullWorker[ModelResult]:
    async def handle(result: ModelResult, message: Delivery) -> None:
        del message  # acked by the worker once this returns
        await flow.complete(result)

    return PullWorker(nc, spec, ModelResult, handle, service="context",
                      inbox=f"{inbox_prefix('context')}.pull.{CONSUMER}", workers=WORKERS,
                      auto_ack=True)


async def on_model_completed(result: ModelResult) -> None:  # documentation only
    del result


def document(broker: NatsBroker) -> None:
    broker.subscriber(
        "model.completed.*",
        stream=JStream(RESULTS.name, declare=False),
        durable=CONSUMER,
        pull_sub=PullSub(batch_size=WORKERS, timeout=5.0),
        title="context/model.completed",
        description="A finished model call: stores the turn, tells the client, starts the next.",
    )(on_model_completed)
