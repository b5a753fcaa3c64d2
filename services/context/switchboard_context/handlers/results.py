"""model.completed -> conversation append + the client's terminal event + turns.completed.

Order matters: the turn is appended before `turn_completed` reaches the client, so a message
the client sends right after it sees this turn in its history. Appending is atomic and
idempotent, and both publishes are safe to repeat (the client drops a second terminal event
for a turn; turns.completed is deduplicated by Nats-Msg-Id)."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.annotations import NatsBroker

from switchboard_common.bus import publish_command, publish_fast
from switchboard_common.model import ModelResult
from switchboard_common.streams import HISTORY, RESULTS
from switchboard_common.turns import (
    TurnCompleted,
    TurnDone,
    TurnError,
    turn_completed_subject,
    turn_events_subject,
)
from switchboard_context.deps import Store

CONSUMER = "context-results"
log = logging.getLogger(__name__)
router = NatsRouter()


@router.subscriber(
    "model.completed.*",
    stream=JStream(RESULTS.name, declare=False),
    durable=CONSUMER,
    pull_sub=PullSub(batch_size=16, timeout=5.0),
    max_workers=16,
    ack_policy=AckPolicy.NACK_ON_ERROR,
    title="context/model.completed",
    description="A finished model call: stores the turn and tells the client.",
)
async def on_model_completed(result: ModelResult, store: Store, broker: NatsBroker) -> None:
    events = turn_events_subject(result.org_id, result.turn_id)
    if result.error is not None:
        await publish_fast(broker.connection, events, TurnError(
            org_id=result.org_id, turn_id=result.turn_id, seq=result.last_seq + 1,
            code=result.error.code, message=result.error.message,
            retryable=result.error.retryable))
        await store.forget_pending(result.turn_id)
        log.warning("turn %s failed: %s", result.turn_id, result.error.code)
        return

    turn = await store.pending(result.turn_id)
    if turn is None:
        # Already completed (a redelivered result after forget_pending) or expired.
        log.info("turn %s: result for an unknown or finished turn, ignored", result.turn_id)
        return
    await store.append_turn(turn.org_id, turn.user_id, turn.client_id, turn.conversation_id,
                            turn.turn_id, turn.text, result.text)
    await publish_command(
        broker,
        TurnCompleted(org_id=turn.org_id, trace=turn.trace, turn_id=turn.turn_id,
                      user_id=turn.user_id, client_id=turn.client_id,
                      conversation_id=turn.conversation_id, user_text=turn.text,
                      assistant_text=result.text, model=result.model, usage=result.usage),
        turn_completed_subject(turn.org_id), msg_id=f"turn-completed:{turn.turn_id}",
        stream=HISTORY.name,
    )
    await publish_fast(broker.connection, events, TurnDone(
        org_id=result.org_id, turn_id=result.turn_id, seq=result.last_seq + 1,
        model=result.model, provider=result.provider, stop_reason=result.stop_reason,
        usage=result.usage, text=result.text))
    await store.forget_pending(result.turn_id)
    log.info("turn %s completed (%d output tokens)", result.turn_id, result.usage.output_tokens)


__all__ = ["on_model_completed", "router"]
