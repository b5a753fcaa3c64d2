"""REST memory: batch ingest, search with citations, forgetting, and deleting a client
removes everything retrievable about it — against the real memory_indexer and context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
import redis.asyncio as redis

from switchboard_common.conversations import ConversationStore, TurnRecord
from switchboard_common.memory import SearchRequest, SearchResponse, search_subject
from switchboard_common.turns import Usage
from tests.connected.gateway.support import Gateway, api

pytestmark = pytest.mark.connected


async def hits(client: httpx.AsyncClient, cid: str, q: str, expect: int,
               timeout: float = 15) -> list[dict[str, Any]]:
    """Search until `expect` hits show up (indexing is asynchronous) or time runs out."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            r = await client.get(f"/clients/{cid}/memory/search", params={"q": q})
            assert r.status_code == 200, r.text
            found = r.json()["hits"]
            if len(found) >= expect:
                return found
            await asyncio.sleep(0.1)


async def done(client: httpx.AsyncClient, cid: str, batch: str, timeout: float = 20
               ) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            r = await client.get(f"/clients/{cid}/ingest/{batch}")
            assert r.status_code == 200, r.text
            if r.json()["done"]:
                return dict(r.json())
            await asyncio.sleep(0.1)


@pytest.fixture
async def va(gateway: Gateway, org: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api(gateway, org, "va1") as client:
        await client.post("/clients", json={"id": "sarah", "name": "Sarah"})
        await client.post("/clients", json={"id": "john", "name": "John"})
        yield client


EVENTS = [
    {"event_id": "e1", "source": "email", "title": "Budget",
     "text": "The Q3 budget for marketing was cut by ten percent after the board meeting."},
    {"event_id": "e2", "source": "calendar", "title": "Offsite",
     "text": "Leadership offsite in Lisbon on October 14 and 15."},
]


async def test_ingest_search_and_forget(va: httpx.AsyncClient, memory_service: None) -> None:
    r = await va.post("/clients/sarah/events", json={"events": EVENTS})
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0) and body["batch_id"]
    again = await va.post("/clients/sarah/events", json={"events": EVENTS[:1]})
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 1)
    # The batch can be followed until it is searchable.
    status = await done(va, "sarah", body["batch_id"])
    assert (status["accepted"], status["indexed"], status["failed"], status["pending"]) == (
        2, 2, 0, 0)
    assert (await va.get(f"/clients/john/ingest/{body['batch_id']}")).status_code == 404

    found = await hits(va, "sarah", "Q3 marketing budget cut", 1)
    assert found[0]["item_id"] == "e1" and found[0]["source"] == "email"
    assert found[0]["occurred_at"] and found[0]["kind"] == "event"
    # Another client of the same user sees nothing of Sarah's.
    assert (await va.get("/clients/john/memory/search", params={"q": "Q3 budget"})
            ).json()["hits"] == []

    forgot = await va.delete("/clients/sarah/memory/items/e1")
    assert forgot.status_code == 200 and forgot.json()["deleted_chunks"] >= 1
    remaining = (await va.get("/clients/sarah/memory/search",
                              params={"q": "Q3 marketing budget cut"})).json()["hits"]
    assert all(h["item_id"] != "e1" for h in remaining)


async def test_search_filters_and_metadata(va: httpx.AsyncClient, memory_service: None) -> None:
    events = [{"event_id": "D1:3", "source": "note", "text": "Maya: we adopted a beagle puppy",
               "occurred_at": "2023-05-08T13:56:00Z", "metadata": {"speaker": "Maya"}},
              {"event_id": "mail.7@x", "source": "email", "text": "The beagle needs shots",
               "occurred_at": "2023-07-01T09:00:00Z"}]
    r = await va.post("/clients/sarah/events", json={"events": events})
    await done(va, "sarah", r.json()["batch_id"])

    async def ids(**params: Any) -> list[str]:
        r = await va.get("/clients/sarah/memory/search", params={"q": "beagle", **params})
        assert r.status_code == 200, r.text
        return sorted(h["item_id"] for h in r.json()["hits"])

    assert await ids() == ["D1:3", "mail.7@x"]
    assert await ids(sources=["email"]) == ["mail.7@x"]
    assert await ids(sources=["email", "note"], mode="text") == ["D1:3", "mail.7@x"]
    assert await ids(until="2023-06-01T00:00:00Z") == ["D1:3"]
    assert await ids(since="2023-06-01T00:00:00Z", mode="dense") == ["mail.7@x"]
    assert await ids(kinds=["user"]) == []
    hit = (await va.get("/clients/sarah/memory/search", params={"q": "puppy", "k": 1})
           ).json()["hits"][0]
    assert hit["item_id"] == "D1:3" and hit["metadata"] == {"speaker": "Maya"}
    assert hit["occurred_at"].startswith("2023-05-08") and hit["indexed_at"]
    assert (await va.delete("/clients/sarah/memory/items/D1:3")).json()["deleted_chunks"] == 1
    assert (await va.get("/clients/sarah/memory/search", params={"q": "x", "mode": "fuzzy"})
            ).status_code == 422


async def test_bad_ingest_is_422_naming_the_field(va: httpx.AsyncClient) -> None:
    r = await va.post("/clients/sarah/events", json={"events": [{"event_id": "x",
                                                                 "source": "fax", "text": "t"}]})
    assert r.status_code == 422 and "source" in r.json()["detail"]
    assert (await va.post("/clients/sarah/events", json={"events": []})).status_code == 422


async def test_memory_unavailable_is_503(va: httpx.AsyncClient) -> None:
    r = await va.get("/clients/sarah/memory/search", params={"q": "anything"})
    assert r.status_code == 503 and "memory" in r.json()["detail"]


async def test_deleting_a_client_leaves_nothing_retrievable(
        va: httpx.AsyncClient, memory_service: None, org: str, nats_url: str,
        valkey_url: str) -> None:
    await va.post("/clients/sarah/events", json={"events": EVENTS})
    await hits(va, "sarah", "Lisbon offsite", 1)
    store = ConversationStore(redis.Redis.from_url(valkey_url))
    await store.append_turn(org, "va1", "sarah", "main", TurnRecord(
        turn_id="t1", user_text="Where is the offsite?", assistant_text="Lisbon.",
        model="m", provider="p", usage=Usage()))

    assert (await va.delete("/clients/sarah")).status_code == 204

    nc = await nats.connect(nats_url)
    try:
        for query in ("Lisbon offsite", "Q3 budget", "Where is the offsite?"):
            for mode in ("hybrid", "dense", "text"):
                reply = await nc.request(search_subject(org), SearchRequest(
                    org_id=org, client_id="sarah", user_id="va1", query=query,
                    mode=mode).model_dump_json().encode(), timeout=5)
                assert SearchResponse.model_validate_json(reply.data).hits == []
    finally:
        await nc.close()
    assert await store.messages(org, "va1", "sarah", "main") == []
    assert (await store.turns(org, "va1", "sarah", "main", 0, 10))[1] == 0
    assert (await va.get("/clients/sarah/memory/search", params={"q": "x"})).status_code in (
        403, 404)
    await store.close()


async def test_cli_uploads_a_large_file_with_a_progress_bar(
        gateway: Gateway, org: str, memory_service: None, tmp_path: Any) -> None:
    import io
    import json

    from switchboard_cli.ingest import run_ingest

    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps({
        "event_id": f"n{i}", "source": "note", "text": f"Note {i}: project update number {i}"})
        for i in range(250)))
    async with api(gateway, org, "va1") as va:
        await va.post("/clients", json={"id": "sarah", "name": "Sarah"})
    out = io.StringIO()
    code = await asyncio.to_thread(run_ingest, gateway.http, "sarah", path, org=org,
                                   user="va1", batch=100, out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "100/250" in text and "200/250" in text and "250/250" in text
    assert "250 events queued for indexing" in text
    # The second bar finishes only when everything is searchable.
    assert "250/250 searchable" in text and "250 events searchable, 0 failed" in text
    found = (await asyncio.to_thread(httpx.get, f"{gateway.http}/v1/clients/sarah/memory/search",
                                     params={"q": "project update number 249", "k": 50},
                                     headers={"X-Org": org, "X-User": "va1"})).json()["hits"]
    assert "n249" in {h["item_id"] for h in found}
    out = io.StringIO()
    assert await asyncio.to_thread(run_ingest, gateway.http, "sarah", path, org=org,
                                   user="va1", batch=100, out=out) == 0
    assert "0 events queued for indexing, 250 already known" in out.getvalue()


SESSION = [
    "Maya: The weather was awful all week.",
    "Jonah: What did you end up naming the new puppy?",
    "Maya: Biscuit! He already chewed through my sneakers.",
    "Jonah: Work has been hectic lately.",
    "Maya: Dinner at my parents' place was lovely.",
    "Jonah: I finally fixed the leaking kitchen tap.",
]


async def context_of(store: redis.Redis, org: str, cid: str, item: str
                     ) -> bytes | str | None:
    """The thread context stored with an event's first chunk (None: it got none)."""
    keys = await store.keys(f"sbmem:*:{org}:{cid}:event:{item}:0")
    assert len(keys) == 1
    return await store.hget(keys[0], "cx")


async def test_an_uploaded_session_finds_a_reply_by_the_question_it_answers(
        va: httpx.AsyncClient, memory_service: None, valkey_url: str, org: str) -> None:
    """Turns of one session uploaded in order share their time: each gets the turn before as
    its thread context (a second vector), and the reply "Biscuit!" is found by a question
    about the puppy's name. The same turns an hour apart each get no context."""
    for cid, one_time in (("sarah", True), ("john", False)):
        r = await va.post(f"/clients/{cid}/events", json={"events": [
            {"event_id": f"D1:{i}", "source": "note", "text": text,
             "occurred_at": "2023-05-08T13:56:00Z" if one_time else f"2023-05-08T{i:02d}:00:00Z"}
            for i, text in enumerate(SESSION, start=1)]})
        assert r.status_code == 202
        await done(va, cid, r.json()["batch_id"])
    r = await va.get("/clients/sarah/memory/search",
                     params={"q": "What name did Maya give her puppy?", "k": 2})
    assert "D1:3" in [h["item_id"] for h in r.json()["hits"]]
    store = redis.Redis.from_url(valkey_url)
    try:
        assert await context_of(store, org, "sarah", "D1:3") == SESSION[1].encode()
        assert await context_of(store, org, "sarah", "D1:1") is None  # the first turn
        assert await context_of(store, org, "john", "D1:3") is None
    finally:
        await store.aclose()


async def test_one_turn_per_upload_continues_its_thread_and_only_its_own(
        va: httpx.AsyncClient, memory_service: None, valkey_url: str, org: str) -> None:
    """A harness that posts every turn on its own, each stamped a few seconds after the one
    before, gets the same contexts as one upload of the session. A private note's text never
    becomes the context of a shared event; another source, a later time or a time 10 minutes
    on gets none; and a forget drops what the next upload would have continued from."""
    uploads: list[dict[str, Any]] = [
        {"event_id": f"D1:{i}", "source": "turn", "text": text,
         "occurred_at": f"2023-05-08T13:56:{7 * i:02d}Z"} for i, text in enumerate(SESSION)]
    uploads[3:3] = [
        {"event_id": "secret", "source": "turn", "visibility": "private",
         "text": "My private note: the surprise party is on Friday.",
         "occurred_at": "2023-05-08T13:56:21Z"},
        {"event_id": "mail", "source": "email", "text": "Invoice 42 is overdue.",
         "occurred_at": "2023-05-08T13:56:21Z"}]
    uploads += [
        {"event_id": "after-secret", "source": "turn", "visibility": "private",
         "text": "My private note: buy a cake.", "occurred_at": "2023-05-08T13:57:00Z"},
        {"event_id": "later", "source": "turn", "text": "Maya: Anyway, see you!",
         "occurred_at": "2023-05-08T14:07:00Z"},
        {"event_id": "earlier", "source": "turn", "text": "Jonah: Bye.",
         "occurred_at": "2023-05-08T14:06:00Z"}]
    batches = []
    for event in uploads:
        r = await va.post("/clients/sarah/events", json={"events": [event]})
        assert r.status_code == 202, r.text
        batches.append(r.json()["batch_id"])
    for batch in batches:
        await done(va, "sarah", batch)
    store = redis.Redis.from_url(valkey_url)
    try:
        got = {e["event_id"]: await context_of(store, org, "sarah", e["event_id"])
               for e in uploads}
        assert got == {
            "D1:0": None,
            "D1:1": SESSION[0].encode(), "D1:2": SESSION[1].encode(),
            "secret": None,  # the shared turns are not its thread either
            "mail": None,  # another source
            "D1:3": SESSION[2].encode(),  # the shared thread skips the private note
            "D1:4": SESSION[3].encode(), "D1:5": SESSION[4].encode(),
            "after-secret": b"My private note: the surprise party is on Friday.",
            "later": None,  # 10 minutes after the last shared turn
            "earlier": None,  # before the turn uploaded just before it
        }
        r = await va.get("/clients/sarah/memory/search",
                         params={"q": "What name did Maya give her puppy?", "k": 2})
        assert "D1:2" in [h["item_id"] for h in r.json()["hits"]]

        assert await store.exists(f"ingest:thread:{org}:sarah")
        assert (await va.delete("/clients/sarah/memory/items/earlier")).status_code == 200
        assert not await store.exists(f"ingest:thread:{org}:sarah")
    finally:
        await store.aclose()
