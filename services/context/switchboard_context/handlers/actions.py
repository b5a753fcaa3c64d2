"""actions.results -> the tool-use loop: collect one action's result; with all results of an
iteration in, request the next model call. A result that comes after its turn's loop moved on
(an approval card decided later) is noted with the conversation instead, for the next prompt.
Idempotent (results are keyed by call, the next request by (turn, iteration), outcomes by
their text); exceptions nack and JetStream redelivers."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub

from switchboard_common.actions import ActionResult
from switchboard_common.permissions import pull_inbox
from switchboard_common.streams import ACTIONS
from switchboard_context.deps import Flow

CONSUMER = "context-actions"


async def on_action_result(result: ActionResult, flow: Flow) -> None:
    if flow.loop is None or not await flow.loop.on_result(result):
        await flow.note_outcome(result)


def router() -> NatsRouter:
    """A fresh router per broker: FastStream binds subscribers to the broker that
    includes them, so two apps in one process (tests) must not share one."""
    r = NatsRouter()
    r.subscriber(
        "actions.results.*",
        stream=JStream(ACTIONS.name, declare=False),
        durable=CONSUMER,
        pull_sub=PullSub(batch_size=1, timeout=5.0),
        inbox_prefix=pull_inbox("context"),
        max_workers=16,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="context/actions.results",
        description="An action's result: continues the turn's tool-use loop.",
    )(on_action_result)
    return r
