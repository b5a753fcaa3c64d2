"""Request/reply: search (context -> memory_indexer) and forget (gateway/admin -> memory_indexer).

Core NATS with a queue group, so replicas share requests. Bad requests get a reply with an
`error` code rather than silence, so the caller never waits out its timeout for a typo."""

from __future__ import annotations

import contextlib
import logging

from faststream.nats import NatsRouter
from faststream.nats.annotations import NatsBroker
from nats.js.errors import NotFoundError

from switchboard_common.bus import Message, publish_fast
from switchboard_common.memory import (
    ForgetRequest,
    ForgetResult,
    MemoryForgotten,
    SearchRequest,
    SearchResponse,
    forgotten_subject,
    ingest_subject,
)
from switchboard_common.streams import HISTORY, INGEST
from switchboard_memory_indexer.adapters.tombstones import StreamName
from switchboard_memory_indexer.deps import Memory
from switchboard_memory_indexer.domain.errors import InvalidEvent
from switchboard_memory_indexer.domain.validation import check_subject, parse

QUEUE = "memory-indexer"
log = logging.getLogger(__name__)
router = NatsRouter()


@router.subscriber("memory.search.*", queue=QUEUE, title="memory_indexer/memory.search",
                   description="Hybrid search over one client's memory. Body: SearchRequest; "
                               "reply: SearchResponse.")
async def on_search(message: Message, memory: Memory) -> SearchResponse:
    raw = message.raw_message
    try:
        req = parse(SearchRequest, raw.data)
        check_subject(raw.subject, req.org_id)
    except InvalidEvent as exc:
        return SearchResponse(request_id="", error=f"invalid_request: {exc.detail}")
    try:
        return await memory.search(req)
    except Exception:
        log.exception("search failed org=%s client=%s", req.org_id, req.client_id)
        return SearchResponse(request_id=req.message_id, error="internal_error")


async def _stream_marks(broker: NatsBroker) -> dict[StreamName, int]:
    """The last sequence of each stream memory is built from: the forget's tombstone covers
    every message stored up to here, in flight or still to be redelivered."""
    js = broker.connection.jetstream()
    marks: dict[StreamName, int] = {}
    for name, stream in (("ingest", INGEST.name), ("history", HISTORY.name)):
        try:
            marks[name] = int((await js.stream_info(stream)).state.last_seq)  # type: ignore[index]
        except NotFoundError:
            marks[name] = 0  # type: ignore[index]
    return marks


@router.subscriber("memory.forget.*", queue=QUEUE, title="memory_indexer/memory.forget",
                   description="Delete a client's memory, one item, one source type or one "
                               "conversation. Body: ForgetRequest; reply: ForgetResult.")
async def on_forget(message: Message, memory: Memory, broker: NatsBroker) -> ForgetResult:
    raw = message.raw_message
    try:
        req = parse(ForgetRequest, raw.data)
        check_subject(raw.subject, req.org_id)
    except InvalidEvent as exc:
        return ForgetResult(request_id="", error=f"invalid_request: {exc.detail}")
    result = await memory.forget(req, await _stream_marks(broker))
    purged = False
    if req.scope == "client":
        # The raw events wait in SB_INGEST for days; forgetting a client removes them too, so
        # a consumer reset cannot bring the client back.
        with contextlib.suppress(NotFoundError):
            purged = await broker.connection.jetstream().purge_stream(
                INGEST.name, subject=ingest_subject(req.org_id, req.client_id))
    await publish_fast(broker.connection, forgotten_subject(req.org_id), MemoryForgotten(
        org_id=req.org_id, client_id=req.client_id, scope=req.scope, item_id=req.item_id,
        source=req.source, conversation_id=req.conversation_id))
    return result.model_copy(update={"ingest_purged": purged})
