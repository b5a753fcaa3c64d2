"""Bus handlers. Until the actions issue lands, a proposal is recorded in the log (tool and
confidence only: arguments may hold personal data) and acked."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub

from switchboard_common.actions import ActionProposed
from switchboard_common.streams import ACTIONS

CONSUMER = "action-executor"
log = logging.getLogger(__name__)
router = NatsRouter()


@router.subscriber(
    "actions.proposed.*",
    stream=JStream(ACTIONS.name, declare=False),
    durable=CONSUMER,
    pull_sub=PullSub(batch_size=16, timeout=5.0),
    ack_policy=AckPolicy.NACK_ON_ERROR,
    title="action_executor/actions.proposed",
    description="Proposed actions to decide on (logged only in the spine).",
)
async def on_action_proposed(action: ActionProposed) -> None:
    log.info("action proposed org=%s client=%s tool=%s confidence=%.2f",
             action.org_id, action.client_id, action.tool, action.confidence)
