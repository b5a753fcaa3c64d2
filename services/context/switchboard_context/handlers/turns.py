"""turns.requested -> model.requested.

Idempotent: the model request's Nats-Msg-Id is derived from (turn, iteration), so a redelivered
turn request re-publishes a request JetStream drops as a duplicate. Exceptions nack the message
(redelivered up to max_deliver, then dead-lettered)."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.annotations import NatsBroker

from switchboard_common.bus import publish_command
from switchboard_common.model import (
    ModelRequest,
    model_msg_id,
    model_requested_subject,
)
from switchboard_common.streams import MODEL, TURNS
from switchboard_common.telemetry import current_trace
from switchboard_common.turns import TurnRequest
from switchboard_context.deps import Config, Store
from switchboard_context.domain.prompt import system_prompt, window

CONSUMER = "context-turns"
log = logging.getLogger(__name__)
router = NatsRouter()


@router.subscriber(
    "turns.requested.*",
    stream=JStream(TURNS.name, declare=False),
    durable=CONSUMER,
    pull_sub=PullSub(batch_size=16, timeout=5.0),
    max_workers=16,
    ack_policy=AckPolicy.NACK_ON_ERROR,
    title="context/turns.requested",
    description="A user message to answer: builds the prompt and asks llm_stream for a model call.",
)
async def on_turn_requested(turn: TurnRequest, store: Store, settings: Config,
                            broker: NatsBroker) -> None:
    history = await store.recent(turn.org_id, turn.user_id, turn.client_id,
                                 turn.conversation_id, settings.history_messages)
    await store.save_pending(turn)
    request = ModelRequest(
        org_id=turn.org_id, trace=turn.trace if turn.trace.traceparent else current_trace(),
        turn_id=turn.turn_id, user_id=turn.user_id, client_id=turn.client_id,
        conversation_id=turn.conversation_id, iteration=0,
        system=system_prompt(settings.system_prompt, client_id=turn.client_id),
        messages=window(history, turn.text, settings.history_messages),
        model=settings.model, max_tokens=settings.max_tokens, deadline_at=turn.deadline_at,
    )
    await publish_command(broker, request, model_requested_subject(turn.org_id),
                          msg_id=model_msg_id(turn.turn_id, 0), stream=MODEL.name)
    log.debug("turn %s -> model request (%d messages)", turn.turn_id, len(request.messages))
