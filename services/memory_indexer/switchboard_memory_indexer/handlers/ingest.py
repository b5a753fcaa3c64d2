"""Bus -> index: finished turns (SB_HISTORY) and external events (SB_INGEST).

Both handlers take the raw message rather than the parsed model: a body that fails validation
must be copied to the dead-letter subject with the reason, and acked at once, so one bad event
never waits out `max_deliver` redeliveries in front of the good ones. Everything else that
fails (Valkey down, model error) raises: the message is nacked and JetStream redelivers it; once
it exhausts `max_deliver`, the shared advisory watcher dead-letters it (reason MAX_DELIVERIES).

Idempotent: chunk ids are deterministic, so a redelivered message overwrites what it wrote.
A message stored before a forget that covers it is acked without indexing (tombstones.py); its
stream sequence says when it was stored. An event that came in a REST batch reports its outcome
to the batch (indexed, forgotten, or failed on its last delivery)."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from faststream.nats.annotations import NatsBroker, NatsMessage

from switchboard_common.dead_letter import dead_letter_delivery
from switchboard_common.memory import IngestEvent
from switchboard_common.permissions import pull_inbox
from switchboard_common.streams import HISTORY, INGEST
from switchboard_common.turns import TurnCompleted
from switchboard_memory_indexer.deps import Batches, Config, Memory
from switchboard_memory_indexer.domain.errors import InvalidEvent
from switchboard_memory_indexer.domain.validation import check_subject, parse

TURNS_CONSUMER = "memory-turns"
INGEST_CONSUMER = "memory-ingest"
# Fetched together and handled concurrently; the batcher embeds their chunks as one batch.
FETCH = 64

log = logging.getLogger(__name__)
router = NatsRouter()


@router.subscriber(
    "turns.completed.*",
    stream=JStream(HISTORY.name, declare=False),
    durable=TURNS_CONSUMER,
    pull_sub=PullSub(batch_size=FETCH, timeout=5.0),
    inbox_prefix=pull_inbox("memory_indexer"),
    max_workers=FETCH,
    ack_policy=AckPolicy.NACK_ON_ERROR,
    title="memory_indexer/turns.completed",
    description="Finished turns become per-client memory (private to the user by default).",
)
async def on_turn_completed(message: NatsMessage, memory: Memory, broker: NatsBroker) -> None:
    raw = message.raw_message
    try:
        turn = parse(TurnCompleted, raw.data)
        check_subject(raw.subject, turn.org_id)
    except InvalidEvent as exc:
        log.warning("turn dead-lettered (%s): %s", exc, exc.detail)
        await dead_letter_delivery(broker.connection, raw, "invalid_event", exc.detail)
        return
    n = await memory.index_turn(turn, raw.metadata.sequence.stream)
    log.debug("turn %s: %s", turn.turn_id, "forgotten" if n is None else f"{n} chunks")


@router.subscriber(
    "events.ingest.*.*",
    stream=JStream(INGEST.name, declare=False),
    durable=INGEST_CONSUMER,
    pull_sub=PullSub(batch_size=FETCH, timeout=5.0),
    inbox_prefix=pull_inbox("memory_indexer"),
    max_workers=FETCH,
    ack_policy=AckPolicy.NACK_ON_ERROR,
    title="memory_indexer/events.ingest",
    description="External events (documents, emails, calendar, notes, CRM) to index per client. "
                "Body: IngestEvent. Malformed bodies go to dlq.SB_INGEST.memory-ingest.",
)
async def on_ingest(message: NatsMessage, memory: Memory, broker: NatsBroker, batches: Batches,
                    settings: Config) -> None:
    raw = message.raw_message
    try:
        event = parse(IngestEvent, raw.data)
        check_subject(raw.subject, event.org_id, event.client_id)
    except InvalidEvent as exc:
        log.warning("ingest event dead-lettered (%s): %s", exc, exc.detail)
        await dead_letter_delivery(broker.connection, raw, "invalid_event", exc.detail)
        return
    try:
        n = await memory.index_event(event, raw.metadata.sequence.stream)
    except Exception:
        if event.batch_id and raw.metadata.num_delivered >= settings.max_deliver:
            await batches.record(event.org_id, event.batch_id, event.event_id, "failed")
        raise
    if event.batch_id:
        await batches.record(event.org_id, event.batch_id, event.event_id,
                             "forgotten" if n is None else "indexed")
    log.debug("event %s: %s", event.event_id, "forgotten" if n is None else f"{n} chunks")
