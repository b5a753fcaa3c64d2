"""The micro-batcher: concurrent items share one embedding call; one failing item fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from switchboard_memory_indexer.domain.documents import Chunk
from switchboard_memory_indexer.domain.ports import (
    Candidate,
    Scope,
    StoredHit,
    Vectors,
)
from switchboard_memory_indexer.service.batcher import IndexBatcher
from tests.unit.memory.stores import IndexlessStore


class CountingEmbedder:
    name = "fake"
    dim = 4

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def embed_passages(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        if any("poison" in t for t in texts):
            raise ValueError("cannot embed")
        return np.ones((len(texts), self.dim), dtype=np.float32)

    async def embed_query(self, text: str) -> Vectors:
        return np.ones(self.dim, dtype=np.float32)

    async def close(self) -> None:
        return None


class ListStore(IndexlessStore):
    def __init__(self) -> None:
        self.docs: dict[str, Chunk] = {}

    async def upsert(self, chunks: Sequence[Chunk], vectors: Vectors,
                     context_vectors: Vectors | None = None) -> int:
        self.docs.update({c.doc_id: c for c in chunks})
        return len(chunks)

    async def _ranked(self, scope: Scope, vector: Vectors | None, text: str | None,
                      candidates: int) -> tuple[list[Candidate], list[Candidate], list[Candidate]]:
        return [], [], []

    async def _fetch(self, scope: Scope, ids: Sequence[str]) -> list[StoredHit]:
        return []

    async def count(self, scope: Scope) -> int:
        return len(self.docs)


def chunk(i: int, text: str = "note") -> Chunk:
    return Chunk(org="o", client="c", item_id=f"e{i}", chunk=0, n_chunks=1, source="note",
                 visibility="client", user=None, title="", text=f"{text} {i}", occurred_at=0.0)


async def test_concurrent_items_are_embedded_together() -> None:
    embedder, store = CountingEmbedder(), ListStore()
    batcher = IndexBatcher(embedder, store, max_batch=16, max_wait_s=0.05)
    results = await asyncio.gather(*(batcher.index([chunk(i)]) for i in range(40)))
    assert results == [1] * 40
    assert len(store.docs) == 40
    assert max(embedder.calls) == 16 and len(embedder.calls) <= 4


async def test_a_poison_item_fails_alone() -> None:
    embedder, store = CountingEmbedder(), ListStore()
    batcher = IndexBatcher(embedder, store, max_batch=16, max_wait_s=0.05)
    results = await asyncio.gather(*(batcher.index([chunk(i, "poison" if i == 3 else "ok")])
                                     for i in range(8)), return_exceptions=True)
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [1] * 7
    assert len(store.docs) == 7


async def test_empty_item_is_a_no_op() -> None:
    batcher = IndexBatcher(CountingEmbedder(), ListStore())
    assert await batcher.index([]) == 0


async def test_unscoped_search_is_refused_by_the_port() -> None:
    from switchboard_memory_indexer.domain.errors import ScopeError
    from switchboard_memory_indexer.domain.ports import SearchParams

    with pytest.raises(ScopeError):
        await ListStore().search("o:c", None, "x", SearchParams(mode="text"))  # type: ignore[arg-type]
