"""Contextual second vectors: which events get a thread context, what is embedded, and how the
contextual ranking joins the fusion (hybrid only, and never as a copy of the dense ranking)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from switchboard_common.memory import MAX_CONTEXT_CHARS, IngestEvent
from switchboard_common.memory_threads import thread_context
from switchboard_memory_indexer.domain.documents import Chunk, chunks_from_event
from switchboard_memory_indexer.domain.fusion import zscore_fusion
from switchboard_memory_indexer.domain.ports import (
    Candidate,
    Scope,
    SearchParams,
    StoredHit,
    Vectors,
    contextual_ranking,
    embed_chunks,
)
from tests.unit.memory.stores import IndexlessStore

SESSION = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def turn(eid: str, text: str, at: datetime = SESSION, source: str = "note",
         context: str = "") -> IngestEvent:
    return IngestEvent(org_id="o1", client_id="c1", event_id=eid, source=source,  # type: ignore[arg-type]
                       text=text, occurred_at=at, context=context)


def test_turns_of_one_session_get_the_turn_before_as_context() -> None:
    out = thread_context([
        turn("D1:1", "Jonah: Where did you go on holiday?"),
        turn("D1:2", "Maya: Lisbon! The food was incredible."),
        turn("D1:3", "Jonah: Jealous.", context="given by the producer"),
        turn("D2:1", "Maya: Back at work.", at=SESSION + timedelta(days=3)),
        turn("mail-1", "Invoice 42 is overdue.", at=SESSION + timedelta(days=3), source="email"),
    ])
    assert [e.context for e in out] == [
        "", "Jonah: Where did you go on holiday?", "given by the producer",
        "",  # another session (another time)
        "",  # another source
    ]


def test_a_long_turn_before_contributes_its_end() -> None:
    long = "x" * (MAX_CONTEXT_CHARS + 500) + " the question?"
    out = thread_context([turn("a", long), turn("b", "The answer.")])
    assert len(out[1].context) == MAX_CONTEXT_CHARS
    assert out[1].context.endswith("the question?")


def test_only_the_first_chunk_carries_the_context() -> None:
    event = turn("a", "One sentence here. " * 100, context="What happened?")
    chunks = chunks_from_event(event, 800, 120)
    assert len(chunks) > 1
    assert chunks[0].context == "What happened?"
    assert all(c.context == "" for c in chunks[1:])


class RecordingEmbedder:
    name = "fake"
    dim = 2

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed_passages(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        return np.array([[1.0, 0.0] if t.startswith("q") else [0.0, 1.0] for t in texts],
                        dtype=np.float32)

    async def embed_query(self, text: str) -> Vectors:
        return np.ones(self.dim, dtype=np.float32)

    async def close(self) -> None:
        return None


async def test_a_context_vector_is_the_mean_of_the_chunk_and_its_context() -> None:
    embedder = RecordingEmbedder()
    plain = [c for e in (turn("a", "alone"), turn("b", "also alone"))
             for c in chunks_from_event(e, 800, 120)]
    _, second = await embed_chunks(embedder, plain)
    assert second is None and embedder.calls == [["alone", "also alone"]]

    embedder.calls.clear()
    # The turn before is in the same batch ("question"): no text is embedded twice.
    uploaded = thread_context([turn("a", "question"), turn("b", "reply"),
                               turn("c", "other", context="quite another context")])
    chunks = [c for e in uploaded for c in chunks_from_event(e, 800, 120)]
    vectors, second = await embed_chunks(embedder, chunks)
    assert embedder.calls == [["question", "reply", "other", "quite another context"]]
    assert second is not None
    assert second[0].tolist() == vectors[0].tolist()  # no context: its plain vector
    half = float(np.sqrt(0.5))
    assert np.allclose(second[1], [half, half]) and np.allclose(second[2], [half, half])

    embedder.calls.clear()
    # An event with a title is indexed as "title\ntext"; its successor's context (its text)
    # takes that vector rather than embedding the text alone once more.
    titled = [IngestEvent(org_id="o1", client_id="c1", event_id="t", source="note",
                          title="quarterly", text="question", occurred_at=SESSION),
              turn("u", "reply")]
    chunks = [c for e in thread_context(titled) for c in chunks_from_event(e, 800, 120)]
    _, second = await embed_chunks(embedder, chunks)
    assert embedder.calls == [["quarterly\nquestion", "reply"]]
    assert second is not None and np.allclose(second[1], [half, half])


def cands(*ids: str, in_context: str = "") -> list[Candidate]:
    """A ranking of `ids` by falling score; chunks named in `in_context` have a context."""
    return [Candidate(i, 0.0, "event", 1.0 - n / 10, in_context=i in in_context)
            for n, i in enumerate(ids)]


def test_the_contextual_ranking_covers_chunks_with_and_without_context() -> None:
    dense = cands("a", "b", "r", "c", in_context="r")  # scores 1.0 .9 .8 .7
    # "r" by its second vector: .95; "s" and "t" have a context too, not in the dense top 4.
    in_context = [Candidate("r", 0, score=.95, in_context=True),
                  Candidate("s", 0, score=.75, in_context=True),
                  Candidate("t", 0, score=.6, in_context=True)]
    assert [c.id for c in contextual_ranking(dense, in_context, 5)] == ["a", "r", "b", "s", "c"]
    assert [c.id for c in contextual_ranking(dense, in_context, 3)] == ["a", "r", "b"]


class FixedStore(IndexlessStore):
    """Returns fixed rankings, to look at the port's fusion alone."""

    def __init__(self, dense: list[Candidate], lexical: list[Candidate],
                 contextual: list[Candidate]) -> None:
        self.lists = (dense, lexical, contextual)

    async def upsert(self, chunks: Sequence[Chunk], vectors: Vectors,
                     context_vectors: Vectors | None = None) -> int:
        return 0

    async def _ranked(self, scope: Scope, vector: Vectors | None, text: str | None,
                      candidates: int) -> tuple[list[Candidate], list[Candidate], list[Candidate]]:
        dense, lexical, contextual = self.lists
        return (dense if vector is not None else [], lexical if text is not None else [],
                contextual if vector is not None else [])

    async def _fetch(self, scope: Scope, ids: Sequence[str]) -> list[StoredHit]:
        return [StoredHit(id=i, item_id=i, source="note", title="", text=i, occurred_at=0.0,
                          conversation=None, chunk=0) for i in ids]

    async def count(self, scope: Scope) -> int:
        return 0


async def ranked(store: FixedStore, mode: str) -> list[str]:
    hits = await store.search(Scope("o1", "c1"), np.ones(2, dtype=np.float32), "query",
                              SearchParams(k=5, mode=mode))  # type: ignore[arg-type]
    return [h.hit.id for h in hits]


async def test_the_contextual_ranking_lifts_a_reply_in_hybrid_only() -> None:
    # "r" (the reply) is last by its own vector and first by its vector in context.
    dense = cands("a", "b", "c", "r", in_context="r")
    store = FixedStore(dense, cands("b", "a"), [Candidate("r", 0, score=2.0, in_context=True)])
    without = FixedStore(dense, cands("b", "a"), [])
    assert (await ranked(store, "hybrid")).index("r") < (await ranked(without, "hybrid")).index("r")
    assert await ranked(store, "dense") == ["a", "b", "c", "r"]


async def test_without_any_context_the_dense_ranking_is_not_counted_twice() -> None:
    plain = FixedStore(cands("a", "b", "c"), cands("c", "b"), [])
    assert contextual_ranking(plain.lists[0], [], 20) == plain.lists[0]
    def fused(*rankings: list[Candidate]) -> list[str]:
        return [f.id for f in zscore_fusion([[(c.id, c.score) for c in r] for r in rankings])]
    dense, lexical, _ = plain.lists
    assert await ranked(plain, "hybrid") == fused(dense, lexical)
    assert fused(dense, lexical) != fused(dense, lexical, dense)  # what the copy would do
