"""Bus handlers of the action_executor.

- `actions.proposed.*` (JetStream, durable pull consumer): decide on each proposed tool call
  and run it where the policy allows. Up to `max_concurrency` proposals run at once, so the
  calls of one model response execute concurrently. Ack is explicit: acked once the outcome
  (and the effect's idempotency key) is stored and announced; an action another worker is
  running right now is nak'ed with a delay; unexpected errors (Valkey or NATS down) nack and
  JetStream redelivers (bounded by max_deliver, then the dead-letter stream). Tool failures
  never escape: they are retried inside the executor and then become a `failed` result.
- `actions.decide.*` (request/reply, queue group): a user's approve/reject/edit.
- `actions.undo.*` (request/reply, queue group): a user's undo of an executed action.
"""

from __future__ import annotations

import logging
from typing import Annotated

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub

from switchboard_action_executor.service import ActionBusy, ActionService
from switchboard_common.actions import ActionProposed, DecideAction, DecideReply, UndoAction
from switchboard_common.bus import LoopContext, Message
from switchboard_common.permissions import pull_inbox
from switchboard_common.streams import ACTIONS

CONSUMER = "action-executor"
log = logging.getLogger(__name__)

Service = Annotated[ActionService, LoopContext("actions")]


async def on_action_proposed(action: ActionProposed, message: Message,
                             service: Service) -> None:
    try:
        record = await service.on_proposed(action)
    except ActionBusy:
        await message.nack(delay=2.0)
        return
    await message.ack()
    log.info("action %s org=%s tool=%s -> %s", action.action_id, action.org_id, action.tool,
             record.status)


async def on_decide(request: DecideAction, service: Service) -> DecideReply:
    try:
        return await service.decide(request)
    except ActionBusy:
        return DecideReply(ok=False, message="the action is being executed right now")


async def on_undo(request: UndoAction, service: Service) -> DecideReply:
    return await service.undo(request)


def build_router(max_concurrency: int) -> NatsRouter:
    """A fresh router per broker (FastStream binds subscribers to the broker including them)."""
    r = NatsRouter()
    r.subscriber(
        "actions.proposed.*",
        stream=JStream(ACTIONS.name, declare=False),
        durable=CONSUMER,
        pull_sub=PullSub(batch_size=1, timeout=5.0),  # see streams.PULL_NOTE
        inbox_prefix=pull_inbox("action_executor"),
        max_workers=max_concurrency,
        ack_policy=AckPolicy.MANUAL,
        title="action_executor/actions.proposed",
        description="Decide on a proposed tool call (autonomy policy) and run it if allowed.",
    )(on_action_proposed)
    r.subscriber(
        "actions.decide.*", queue="action_executor", max_workers=max_concurrency,
        title="action_executor/actions.decide",
        description="A user's decision on a pending action: approve (optionally with edited "
                    "arguments) or reject. Replies with the outcome.",
    )(on_decide)
    r.subscriber(
        "actions.undo.*", queue="action_executor", max_workers=max_concurrency,
        title="action_executor/actions.undo",
        description="A user's undo of an executed action: its tool's compensating operation "
                    "runs and the action becomes `undone`. Replies with the outcome.",
    )(on_undo)
    return r
