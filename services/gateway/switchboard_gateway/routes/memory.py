"""Per-client memory: ingest events (batch), search, and forgetting.

Ingest publishes each event to JetStream (`events.ingest.<org>.<client>`, deduplicated by the
event id) and returns once they are stored, with a batch id; memory_indexer embeds and indexes
them asynchronously and records each event's outcome, so `GET .../ingest/<batch id>` says when
the batch is searchable (switchboard_common.ingest_batches). Search and forget ask
memory_indexer over request/reply (503 if it does not answer). Deleting a client
(routes/clients.py) forgets its memory the same way."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from switchboard_common.credentials import Scope
from switchboard_common.envelope import Id, new_id, utcnow
from switchboard_common.ingest_batches import BatchStatus
from switchboard_common.memory import (
    MAX_CONTEXT_CHARS,
    MAX_K,
    MAX_QUERY_CHARS,
    ForgetRequest,
    ForgetResult,
    IngestEvent,
    ItemId,
    MemoryKind,
    SearchHit,
    SearchMode,
    SearchRequest,
    SourceType,
    Visibility,
)
from switchboard_common.memory_threads import Threads, thread_of
from switchboard_gateway.deps import AccessibleClient, Limits, Me, MemoryApi
from switchboard_gateway.domain.access import require_scope
from switchboard_gateway.domain.identity import Identity
from switchboard_gateway.domain.limits import LimitExceeded
from switchboard_gateway.routes.errors import COMMON, LIMITED, NOT_FOUND

router = APIRouter(prefix="/v1/clients/{client_id}", tags=["memory"],
                   responses={**COMMON, **NOT_FOUND})

MAX_BATCH = 500


class IngestItem(BaseModel):
    """One external event (a document, email, calendar entry, note or CRM change)."""

    event_id: ItemId
    """The producer's own id (1-128 of letters, digits and `_ . : @ + = -`, starting with a
    letter or digit): sending it again replaces, never duplicates."""
    source: SourceType
    text: str = Field(min_length=1, max_length=200_000)
    title: str = ""
    occurred_at: datetime = Field(default_factory=utcnow)
    visibility: Visibility = "client"
    """`private`: visible only to the user who uploads it."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    context: str = Field("", max_length=MAX_CONTEXT_CHARS)
    """What came just before this event in its thread (the previous turn), embedded with it so
    a reply is found by the question it answers; never returned. Left empty, it is the text of
    the previous event of the same source and visibility (and user, if private) uploaded for
    the client, in this upload or an earlier one within the hour, when that event's
    `occurred_at` is equal to this one's or at most 5 minutes before it (the turns of one
    session of a transcript or chat). Events without `occurred_at` get none and give none."""


class IngestBatch(BaseModel):
    events: list[IngestItem] = Field(min_length=1, max_length=MAX_BATCH)


class IngestAccepted(BaseModel):
    batch_id: str
    """Follow it: `GET /v1/clients/<client>/ingest/<batch_id>`."""
    accepted: int
    """Events stored for indexing."""
    duplicates: int
    """Events JetStream already had (same event id within its duplicate window)."""


class SearchResults(BaseModel):
    hits: list[SearchHit]
    model: str
    took_ms: float


@router.post("/events", response_model=IngestAccepted, status_code=202, responses=LIMITED,
             summary=f"Upload up to {MAX_BATCH} events to the client's memory")
async def ingest(batch: IngestBatch, client: AccessibleClient, who: Me, memory: MemoryApi,
                 limiter: Limits) -> IngestAccepted:
    require_scope(who, Scope.INGEST)
    refused = await limiter.admit_ingest(Identity(org=who.org, user=who.user.id),
                                         len(batch.events))
    if refused is not None:
        raise LimitExceeded(refused)
    batch_id = new_id()
    # Opened before the first publish: the indexer may record an outcome before we return.
    await memory.batches.open(who.org, client.id, batch_id)
    events = [IngestEvent(org_id=who.org, client_id=client.id, batch_id=batch_id,
                          user_id=who.user.id if item.visibility == "private" else None,
                          **item.model_dump()) for item in batch.events]
    # Only events with a stated time are threads' turns: a missing one is the upload's time,
    # and undated items uploaded together (notes, documents) are not a conversation.
    dated = ["occurred_at" in item.model_fields_set for item in batch.events]
    threads = Threads(await memory.threads.load(
        who.org, client.id, {thread_of(e) for e, d in zip(events, dated, strict=True) if d}))
    accepted = duplicates = 0
    for event, has_time in zip(events, dated, strict=True):
        if await memory.ingest(threads.follow(event) if has_time else event):
            accepted += 1
        else:
            duplicates += 1
    await memory.threads.save(who.org, client.id, threads.moved)
    await memory.batches.accepted(who.org, batch_id, accepted, duplicates)
    return IngestAccepted(batch_id=batch_id, accepted=accepted, duplicates=duplicates)


@router.get("/ingest/{batch_id}", response_model=BatchStatus,
            summary="Progress of an upload: accepted, indexed, failed, forgotten, done")
async def ingest_status(batch_id: Id, client: AccessibleClient, who: Me, memory: MemoryApi
                        ) -> BatchStatus:
    found = await memory.batches.status(who.org, batch_id)
    if found is None or found.client_id != client.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such ingest batch for this client")
    return found


@router.get("/memory/search", response_model=SearchResults,
            summary="Hybrid search of what the client's memory holds (with citations)")
async def search(client: AccessibleClient, who: Me, memory: MemoryApi,
                 q: str = Query(min_length=1, max_length=MAX_QUERY_CHARS),
                 k: int = Query(8, ge=1, le=MAX_K),
                 mode: SearchMode = "hybrid",
                 sources: Annotated[list[SourceType] | None, Query()] = None,
                 kinds: Annotated[list[MemoryKind] | None, Query()] = None,
                 since: datetime | None = None,
                 until: datetime | None = None) -> SearchResults:
    """Filters combine with AND; `sources` and `kinds` may repeat (`?kinds=event&kinds=user`);
    `since`/`until` (ISO 8601, inclusive) bound the item's own date (`occurred_at`)."""
    response = await memory.search(SearchRequest(
        org_id=who.org, client_id=client.id, user_id=who.user.id,
        query=q, k=k, mode=mode, sources=sources, kinds=kinds, since=since, until=until))
    return SearchResults(hits=response.hits, model=response.model, took_ms=response.took_ms)


async def _forget(memory: MemoryApi, who: Me, client_id: str,
                  scope: Literal["client", "item", "source"], **target: Any) -> ForgetResult:
    return await memory.forget(ForgetRequest(
        org_id=who.org, client_id=client_id, scope=scope,
        requested_by=who.user.id, **target))


@router.delete("/memory", response_model=ForgetResult,
               summary="Forget everything indexed for the client (vectors and text)")
async def forget_all(client: AccessibleClient, who: Me, memory: MemoryApi) -> ForgetResult:
    return await _forget(memory, who, client.id, "client")


@router.delete("/memory/items/{item_id}", response_model=ForgetResult,
               summary="Forget one event or turn")
async def forget_item(item_id: ItemId, client: AccessibleClient, who: Me, memory: MemoryApi
                      ) -> ForgetResult:
    return await _forget(memory, who, client.id, "item", item_id=item_id)


@router.delete("/memory/sources/{source}", response_model=ForgetResult,
               summary="Forget everything that came from one source type")
async def forget_source(source: SourceType, client: AccessibleClient, who: Me,
                        memory: MemoryApi) -> ForgetResult:
    return await _forget(memory, who, client.id, "source", source=source)
