"""model.completed -> conversation append + the client's terminal event + turns.completed,
then the conversation's next turn. Safe to redeliver: the append is atomic and once-only,
turns.completed is deduplicated by Nats-Msg-Id, and a client ignores a second terminal event."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub

from switchboard_common.model import ModelResult
from switchboard_common.permissions import pull_inbox
from switchboard_common.streams import RESULTS
from switchboard_context.deps import Flow

CONSUMER = "context-results"


async def on_model_completed(result: ModelResult, flow: Flow) -> None:
    await flow.complete(result)


def router() -> NatsRouter:
    """A fresh router per broker: FastStream binds subscribers to the broker that
    includes them, so two apps in one process (tests) must not share one."""
    r = NatsRouter()
    r.subscriber(
        "model.completed.*",
        stream=JStream(RESULTS.name, declare=False),
        durable=CONSUMER,
        pull_sub=PullSub(batch_size=1, timeout=5.0),  # see streams.PULL_NOTE
        inbox_prefix=pull_inbox("context"),
        max_workers=16,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="context/model.completed",
        description="A finished model call: stores the turn, tells the client, starts the next.",
    )(on_model_completed)
    return r
