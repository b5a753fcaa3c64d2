"""What the web app needs from the gateway beyond the chat: conversation titles, the tool
catalogue, the inbox across clients, a second socket following a turn live, and stop."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import nats
import pytest
import redis.asyncio as redis
import websockets

from switchboard_common.action_store import ActionStore
from switchboard_common.actions import ActionRecord, Decision
from switchboard_common.conversations import ConversationStore, TurnRecord
from switchboard_common.turns import TurnCancel, Usage, turn_cancel_subject
from tests.connected.gateway.support import Backend, Gateway, api, recv_json, user_message

pytestmark = pytest.mark.connected


async def test_conversation_titles(gateway: Gateway, org: str, valkey: redis.Redis) -> None:
    async with api(gateway, org, "ana") as ana:
        await ana.post("/clients", json={"id": "sarah", "name": "Sarah"})
        await ConversationStore(valkey).append_turn(org, "ana", "sarah", "c1", TurnRecord(
            turn_id="t1", user_text="q", assistant_text="a", model="m", provider="p",
            usage=Usage(), stop_reason="cancelled"))
        renamed = await ana.patch("/clients/sarah/conversations/c1", json={"title": "Q3 plan"})
        assert renamed.status_code == 200 and renamed.json() == {"title": "Q3 plan"}
        items = (await ana.get("/clients/sarah/conversations")).json()["items"]
        assert [(c["conversation_id"], c["title"]) for c in items] == [("c1", "Q3 plan")]
        turns = (await ana.get("/clients/sarah/conversations/c1/turns")).json()["items"]
        assert turns[0]["stop_reason"] == "cancelled"
        bad = await ana.patch("/clients/sarah/conversations/c1", json={"title": ""})
        assert bad.status_code == 422


async def test_tools_and_the_inbox_across_clients(gateway: Gateway, org: str,
                                                  valkey: redis.Redis) -> None:
    store = ActionStore(valkey)

    def record(action_id: str, client: str, status: str, **extra: object) -> ActionRecord:
        return ActionRecord.model_validate({
            "action_id": action_id, "org_id": org, "turn_id": "t", "user_id": "ana",
            "client_id": client, "tool": "task_add", "status": status,
            "arguments": {"title": action_id}, **extra})

    async with api(gateway, org, "ana") as ana, api(gateway, org, "ben") as ben:
        await ana.get("/me")
        await ben.get("/me")
        for client in ("sarah", "john", "other"):
            await ana.post("/clients", json={"id": client, "name": client})
        await ana.post("/clients/sarah/assignees/ben")
        await ana.post("/clients/john/assignees/ben")
        soon = datetime.now(UTC) + timedelta(hours=1)
        await store.create(record("a1", "sarah", "pending", expires_at=soon))
        await store.create(record("a2", "john", "pending", expires_at=soon))
        await store.create(record("a3", "other", "pending", expires_at=soon))
        await store.create(record("a4", "sarah", "executed"))
        await store.create(record("a5", "john", "needs_input"))
        await store.create(record("a6", "john", "executed",
                                  decision=Decision(approve=True, by="ben")))

        tools = {t["name"]: t for t in (await ben.get("/tools")).json()}
        assert tools["email_send"]["risky"] is True
        assert "subject" in tools["email_send"]["input_schema"]["properties"]

        pending = (await ben.get("/inbox")).json()
        assert sorted(a["action_id"] for a in pending) == ["a1", "a2"]  # not `other`
        feed = (await ben.get("/inbox", params={"kind": "feed"})).json()
        assert sorted(a["action_id"] for a in feed) == ["a4", "a5"]  # not the approved one
        one = (await ben.get("/inbox", params={"kind": "feed", "client_id": "john"})).json()
        assert [a["action_id"] for a in one] == ["a5"]
        assert (await ben.get("/inbox", params={"client_id": "other"})).status_code == 403


async def test_a_second_socket_follows_the_conversation_and_stop_is_sent(
        gateway: Gateway, backend: Backend, org: str, nats_url: str) -> None:
    async with api(gateway, org, "va1") as http:
        await http.post("/clients", json={"id": "sarah", "name": "Sarah"})
    cancels: list[TurnCancel] = []
    nc = await nats.connect(nats_url)

    async def on_cancel(msg: nats.aio.msg.Msg) -> None:
        cancels.append(TurnCancel.model_validate_json(msg.data))

    await nc.subscribe(turn_cancel_subject(org), cb=on_cancel)
    async with websockets.connect(gateway.ws(org)) as first, \
            websockets.connect(gateway.ws(org)) as second, \
            websockets.connect(gateway.ws(org, "intruder")) as other:
        for ws in (second, other):
            await ws.send(json.dumps({"type": "watch", "client_id": "sarah",
                                      "conversation_id": "main"}))
        await asyncio.sleep(1.0)  # the watches are subscribed (nothing confirms a watch)
        await first.send(user_message("Plan my week", key="k1"))
        turn = await backend.next_turn()
        assert (await recv_json(first))["type"] == "turn_started"
        observed = await recv_json(second)
        assert (observed["type"], observed["turn_id"], observed["text"]) == (
            "turn_observed", turn.turn_id, "Plan my week")
        await backend.delta(turn, 1, "Monday ")
        assert (await recv_json(second))["text"] == "Monday "
        assert (await recv_json(first))["text"] == "Monday "

        await second.send(json.dumps({"type": "cancel", "turn_id": turn.turn_id}))
        # The stop reaches the bus before the answer ends: on a loaded machine the end could
        # otherwise overtake the cancel frame, and a finished turn has nothing to stop.
        async with asyncio.timeout(10):
            while not cancels:
                await asyncio.sleep(0.02)
        await backend.done(turn, 2, "Monday ")
        for ws in (first, second):
            assert (await recv_json(ws))["type"] == "turn_completed"
        # Another user never sees the turn, nor may stop it.
        await other.send(json.dumps({"type": "cancel", "turn_id": turn.turn_id}))
        assert (await recv_json(other))["code"] == "unknown_turn"
    await nc.flush()
    assert [c.turn_id for c in cancels] == [turn.turn_id]
    await nc.close()


async def test_usage_per_day(gateway: Gateway, org: str, valkey: redis.Redis) -> None:
    store = ConversationStore(valkey)
    async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana:
        await ana.post("/clients", json={"id": "sarah", "name": "Sarah"})
        for i in range(2):
            await store.append_turn(org, "ana", "sarah", "c1", TurnRecord(
                turn_id=f"t{i}", user_text="q", assistant_text="a", model="m", provider="p",
                usage=Usage(input_tokens=100, output_tokens=10), cost_usd=0.25))
        days = (await ana.get("/clients/sarah/usage/daily", params={"days": 7})).json()
        assert len(days) == 7 and days[-1]["date"] == datetime.now(UTC).date().isoformat()
        assert (days[-1]["turns"], days[-1]["output_tokens"], days[-1]["cost_usd"]) == (
            2, 20, 0.5)
        assert all(d["turns"] == 0 for d in days[:-1])
        org_days = (await boss.get("/usage/daily", params={"days": 1})).json()
        assert [d["turns"] for d in org_days] == [2]
        assert (await ana.get("/usage/daily")).status_code == 403
        ttl = await valkey.ttl(f"usage:{org}:client:sarah:day:{days[-1]['date']}")
        assert 399 * 86400 < ttl <= 400 * 86400
        await store.forget_client(org, "sarah")  # deleting a client forgets its days too
        assert not await valkey.exists(f"usage:{org}:client:sarah:day:{days[-1]['date']}")
