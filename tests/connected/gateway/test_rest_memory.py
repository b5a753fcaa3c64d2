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
    assert r.status_code == 202 and r.json() == {"accepted": 2, "duplicates": 0}
    again = await va.post("/clients/sarah/events", json={"events": EVENTS[:1]})
    assert again.json() == {"accepted": 0, "duplicates": 1}

    found = await hits(va, "sarah", "Q3 marketing budget cut", 1)
    assert found[0]["item_id"] == "e1" and found[0]["source"] == "email"
    assert found[0]["occurred_at"]
    # Another client of the same user sees nothing of Sarah's.
    assert (await va.get("/clients/john/memory/search", params={"q": "Q3 budget"})
            ).json()["hits"] == []

    forgot = await va.delete("/clients/sarah/memory/items/e1")
    assert forgot.status_code == 200 and forgot.json()["deleted_chunks"] >= 1
    remaining = (await va.get("/clients/sarah/memory/search",
                              params={"q": "Q3 marketing budget cut"})).json()["hits"]
    assert all(h["item_id"] != "e1" for h in remaining)


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
    out = io.StringIO()
    assert await asyncio.to_thread(run_ingest, gateway.http, "sarah", path, org=org,
                                   user="va1", batch=100, out=out) == 0
    assert "0 events queued for indexing, 250 already known" in out.getvalue()
