"""Events -> background turns: an ingested event that matches one of the client's trigger rules
starts a turn with no user message, through the same flow as a user's turn (prompt building,
memory, the tool-use loop and its bounds, the autonomy policy).

    claimed by another message  -> nothing (one background turn per event id)
    client unknown / no user    -> nothing (nobody to propose to)
    no rule matches             -> nothing: no model call
    inside quiet hours          -> later (JetStream redelivers the event when they end)
    over the client/org rate    -> later (when the minute window turns)
    otherwise                   -> claim the event and queue its turn, in one Valkey script
                                   (nothing if another message claimed it meanwhile), start
                                   it, and only then ack the event

A crash anywhere before the ack leaves the event unacknowledged: JetStream redelivers the
same message, whose claim is its own, so it queues (and starts) the same turn again, unless
that turn already ran (adapters/trigger_gate.py).

Whose turn: the event's `user_id`, else the client's first assigned user; the turn's
proposals reach that user's agency inbox. The event is untrusted: its text is quoted as data
and the turn is tainted by it (`event:<source>:<id>`), so a risky or outbound tool from a
background turn never runs alone, and the approval card names the event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from switchboard_common.directory import Directory
from switchboard_common.envelope import utcnow
from switchboard_common.memory import IngestEvent
from switchboard_common.triggers import (
    ACTIVITY_CONVERSATION,
    TriggerRule,
    background_turn_id,
    first_match,
)
from switchboard_common.turns import Background, TurnRequest
from switchboard_common.untrusted import quote
from switchboard_context.adapters.trigger_gate import TriggerGate
from switchboard_context.adapters.turn_queue import TAKEN
from switchboard_context.flow import TurnFlow

log = logging.getLogger(__name__)

MAX_EVENT_CHARS = 6000
BACKGROUND_NOTE = (
    "This is a background task, not a message from the user: an event arrived from another "
    "system and matched the rule below. Act on it as the rule says; use tools to propose "
    "what should be done, and finish with one short line saying what you did or propose "
    "(it becomes the client's activity feed entry).")


@dataclass
class TriggerIntake:
    flow: TurnFlow
    directory: Directory
    gate: TriggerGate
    deadline_s: float

    async def handle(self, event: IngestEvent, order: int) -> float | None:
        """None: done with this event (acked). A number: deliver it again after that many
        seconds (quiet hours, rate limits)."""
        org, client_id = event.org_id, event.client_id
        if await self.gate.claimed_by_another(org, client_id, event.event_id, order):
            return None
        client = await self.directory.get_client(org, client_id)
        user = event.user_id or (client.assigned_users[0] if client and client.assigned_users
                                 else None)
        if client is None or user is None:
            return None
        resolved, _ = await self.flow.skills.resolve(org, user, client_id)
        rule = first_match(resolved.skills.triggers, event)
        if rule is None:
            return None
        quiet = resolved.skills.quiet_hours
        if quiet is not None and (resume := quiet.resume_at(
                utcnow(), resolved.skills.timezone)) is not None:
            log.info("event %s of client %s waits for the end of quiet hours (%s)",
                     event.event_id, client_id, resume.isoformat())
            return max(1.0, (resume - utcnow()).total_seconds())
        if (wait := await self.gate.admit(org, client_id)) is not None:
            log.info("event %s of client %s delayed %.0f s by the trigger rate limit",
                     event.event_id, client_id, wait)
            return wait
        turn = self.turn_for(event, rule, user)
        start = await self.flow.accept(turn, order, once=self.gate.once(
            org, client_id, event.event_id, order))
        if start == TAKEN:
            return None
        if start is not None:
            await self.flow.start(start, accepted=turn)
        log.info("event %s of client %s started background turn %s (rule %s)",
                 event.event_id, client_id, turn.turn_id, rule.name)
        return None

    def turn_for(self, event: IngestEvent, rule: TriggerRule, user: str) -> TurnRequest:
        labels = {"source": event.source, "id": event.event_id}
        if sender := str(event.metadata.get("from") or event.metadata.get("sender") or ""):
            labels["sender"] = sender
        body = f"{event.title}\n{event.text}" if event.title else event.text
        text = (f"{BACKGROUND_NOTE}\n\nRule \"{rule.name}\": {rule.instruction}\n\n"
                + quote(body[:MAX_EVENT_CHARS], kind="event", **labels))
        turn_id = background_turn_id(event.org_id, event.client_id, event.event_id)
        return TurnRequest(
            org_id=event.org_id, turn_id=turn_id, user_id=user, client_id=event.client_id,
            conversation_id=ACTIVITY_CONVERSATION, text=text,
            idempotency_key=f"event:{event.event_id}",
            deadline_at=utcnow() + timedelta(seconds=self.deadline_s),
            background=Background(event_id=event.event_id, source=event.source,
                                  rule=rule.name, tools=rule.tools))
