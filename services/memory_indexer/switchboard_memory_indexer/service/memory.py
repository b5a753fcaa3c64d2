"""The memory use cases behind the handlers: index a turn or an event, search, forget."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from switchboard_common.memory import (
    ForgetRequest,
    ForgetResult,
    IngestEvent,
    MemoryKind,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SourceType,
)
from switchboard_common.turns import TurnCompleted
from switchboard_memory_indexer.adapters.tombstones import StreamName, Tombstones
from switchboard_memory_indexer.domain.documents import Chunk, chunks_from_event, chunks_from_turn
from switchboard_memory_indexer.domain.errors import ModelMismatch
from switchboard_memory_indexer.domain.ports import (
    Embedder,
    Forget,
    IndexInfo,
    Scope,
    SearchParams,
    VectorStore,
    embed_chunks,
)
from switchboard_memory_indexer.service.batcher import IndexBatcher

log = logging.getLogger(__name__)
DAY_S = 86400.0


@dataclass(frozen=True)
class Tuning:
    chunk_chars: int = 800
    chunk_overlap: int = 120
    turns_private: bool = True
    candidates: int = 20
    assistant_weight: float = 0.5


class MemoryService:
    def __init__(self, embedder: Embedder, store: VectorStore, batcher: IndexBatcher,
                 tombstones: Tombstones, tuning: Tuning) -> None:
        self.embedder = embedder
        self.store = store
        self._batcher = batcher
        self._tombstones = tombstones
        self._t = tuning

    async def index_event(self, event: IngestEvent, seq: int) -> int | None:
        """Index an event stored at SB_INGEST sequence `seq`: the number of chunks written, or
        None when a forget issued after it was stored covers it (it is then not indexed)."""
        return await self._index_unless_forgotten(
            Scope(event.org_id, event.client_id), event.event_id, event.source, None,
            "ingest", seq, chunks_from_event(event, self._t.chunk_chars, self._t.chunk_overlap))

    async def index_turn(self, turn: TurnCompleted, seq: int) -> int | None:
        """Index a finished turn stored at SB_HISTORY sequence `seq` (see index_event)."""
        return await self._index_unless_forgotten(
            Scope(turn.org_id, turn.client_id), turn.turn_id, "turn", turn.conversation_id,
            "history", seq, chunks_from_turn(turn, self._t.chunk_chars, self._t.chunk_overlap,
                                             self._t.turns_private))

    async def _index_unless_forgotten(self, scope: Scope, item: str, source: str,
                                      conversation: str | None, stream: StreamName, seq: int,
                                      chunks: list[Chunk]) -> int | None:
        async def covered() -> bool:
            return await self._tombstones.covers(
                scope.org, scope.client, item=item, source=source, conversation=conversation,
                stream=stream, seq=seq)

        if await covered():
            # An earlier delivery may have written the item after the forget's delete and died
            # before its own check below (a crash right after the forget): remove what it left.
            await self.store.forget(scope, Forget(item_id=item))
            return None
        written = await self._batcher.index(chunks)
        # Checked again after the write: a forget that ran while this item was being embedded
        # wrote its tombstone before deleting, so either its delete removed our chunks or this
        # check sees the tombstone and we remove them ourselves (tombstones.py).
        if await covered():
            await self.store.forget(scope, Forget(item_id=item))
            return None
        return written

    async def ready(self) -> bool:
        """Readiness of this replica: the model is loaded (the service exists only after it
        is), the store answers and the index for the model is the active one."""
        return await self.store.ready()

    async def search(self, req: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        scope = Scope(org=req.org_id, client=req.client_id, user=req.user_id,
                      sources=tuple(req.sources or ()), kinds=tuple(req.kinds or ()),
                      since=req.since.timestamp() if req.since else None,
                      until=req.until.timestamp() if req.until else None)
        vector = await self.embedder.embed_query(req.query) if req.mode != "text" else None
        params = SearchParams(
            k=req.k, candidates=max(self._t.candidates, req.k),
            mode=req.mode, now=time.time(),
            recency_half_life_s=(req.recency_half_life_days * DAY_S
                                 if req.recency_half_life_days else None),
            kind_weights={"assistant": self._t.assistant_weight})
        ranked = await self.store.search(scope, vector, req.query, params)
        hits = [SearchHit(id=r.hit.id, item_id=r.hit.item_id,
                          source=cast(SourceType, r.hit.source),
                          kind=cast(MemoryKind, r.hit.kind), title=r.hit.title,
                          text=r.hit.text,
                          occurred_at=datetime.fromtimestamp(r.hit.occurred_at, UTC),
                          indexed_at=(datetime.fromtimestamp(r.hit.indexed_at, UTC)
                                      if r.hit.indexed_at else None),
                          conversation_id=r.hit.conversation, chunk=r.hit.chunk,
                          metadata=dict(r.hit.metadata), score=r.score,
                          dense_rank=r.dense_rank, text_rank=r.text_rank)
                for r in ranked]
        return SearchResponse(request_id=req.message_id, hits=hits, model=self.embedder.name,
                              took_ms=(time.perf_counter() - started) * 1000)

    async def forget(self, req: ForgetRequest, marks: dict[StreamName, int]) -> ForgetResult:
        """Delete, after burying a tombstone at the streams' last sequences (`marks`) so that
        nothing stored before this forget can be indexed again (tombstones.py)."""
        scope = Scope(org=req.org_id, client=req.client_id)
        what = Forget(item_id=req.item_id if req.scope == "item" else None,
                      source=req.source if req.scope == "source" else None,
                      conversation=req.conversation_id if req.scope == "conversation" else None)
        await self._tombstones.bury(req.org_id, req.client_id, what, marks)
        deleted = await self.store.forget(scope, what)
        log.info("forgot %d chunks org=%s client=%s scope=%s", deleted, req.org_id,
                 req.client_id, req.scope)
        return ForgetResult(request_id=req.message_id, deleted_chunks=deleted)


async def prepare_index(store: VectorStore, embedder: Embedder, *, reindex: bool) -> IndexInfo:
    """Make the index for the configured model the active one. When the active index was built
    with another model or dimension, every stored chunk is re-embedded into the new index
    (chunks keep their text, so nothing needs the original events) and the old one is dropped;
    with `reindex=False` start-up fails instead, so a wrong model is never silently mixed in."""
    previous = await store.active()
    info = await store.ensure(embedder.name, embedder.dim)
    if previous is not None and previous.name != info.name:
        if not reindex:
            raise ModelMismatch(
                f"index {previous.name} was built with {previous.model} ({previous.dim} d); "
                f"configured model is {info.model} ({info.dim} d). Set "
                "MEMORY_INDEXER_REINDEX_ON_MODEL_CHANGE=true to re-embed everything.")
        moved = 0
        async for chunks in store.chunks_of(previous):
            if chunks:
                await store.upsert(chunks, *await embed_chunks(embedder, chunks))
                moved += len(chunks)
        await store.drop(previous)
        log.warning("re-indexed %d chunks from %s into %s", moved, previous.name, info.name)
    await store.activate()
    return info
