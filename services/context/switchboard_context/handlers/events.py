"""events.ingest -> trigger rules -> maybe a background turn (switchboard_context.triggers).

context reads the ingest stream through its own durable (`context-triggers`, new events only:
adding it to a stream that holds a week of events must not start a week of turns); the
memory_indexer keeps its own, so one failing never holds the other back. Manual ack: quiet
hours and rate limits answer with a delayed nak (JetStream delivers the event again then);
a failure naks with backoff; a malformed event is dead-lettered (bus.reject_invalid)."""

from __future__ import annotations

import logging
from typing import Annotated

from faststream import AckPolicy, Context
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.annotations import NatsMessage

from switchboard_common.bus import redelivery_delay
from switchboard_common.memory import IngestEvent
from switchboard_common.permissions import pull_inbox
from switchboard_common.streams import INGEST
from switchboard_context.triggers import TriggerIntake

CONSUMER = "context-triggers"
log = logging.getLogger(__name__)
Intake = Annotated[TriggerIntake, Context("triggers")]


async def on_event(event: IngestEvent, intake: Intake, message: NatsMessage) -> None:
    raw = message.raw_message
    if raw.subject.split(".")[2:4] != [event.org_id, event.client_id]:
        log.warning("event on %s names another org or client; ignored", raw.subject)
        await message.ack()
        return
    try:
        later = await intake.handle(event, order=raw.metadata.sequence.stream)
    except Exception:
        log.exception("event %s: trigger handling failed", event.event_id)
        await message.nack(delay=redelivery_delay(raw))
        return
    await (message.ack() if later is None else message.nack(delay=later))


def router() -> NatsRouter:
    """A fresh router per broker (see handlers.turns.router)."""
    r = NatsRouter()
    r.subscriber(
        "events.ingest.*.*",
        stream=JStream(INGEST.name, declare=False),
        durable=CONSUMER,
        pull_sub=PullSub(batch_size=1, timeout=5.0),
        inbox_prefix=pull_inbox("context"),
        max_workers=8,
        ack_policy=AckPolicy.MANUAL,
        title="context/events.ingest",
        description="An ingested event: matched against the client's trigger rules; a match "
                    "starts a background turn (one per event id).",
    )(on_event)
    return r
