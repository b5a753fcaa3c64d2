"""REST: conversations and turns (paginated) and usage, from what context stored."""

from __future__ import annotations

import pytest

from switchboard_common.conversations import ConversationStore, TurnRecord
from switchboard_common.turns import Usage
from switchboard_common.valkey import connect_valkey
from tests.connected.gateway.support import Gateway, api

pytestmark = pytest.mark.connected


def _turn(i: int, cost: float = 0.001) -> TurnRecord:
    return TurnRecord(turn_id=f"t{i}", user_text=f"question {i}", assistant_text=f"answer {i}",
                      model="m", provider="fake", cost_usd=cost,
                      usage=Usage(input_tokens=100, output_tokens=10,
                                  cache_read_input_tokens=40))


async def test_conversations_turns_and_usage(gateway: Gateway, org: str, valkey_url: str
                                             ) -> None:
    valkey = await connect_valkey(valkey_url, 5.0)
    store = ConversationStore(valkey)
    try:
        async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana, \
                api(gateway, org, "ben") as ben:
            for c in (boss, ana, ben):
                await c.get("/me")
            await ana.post("/clients", json={"id": "sarah", "name": "Sarah"})
            await ana.post("/clients/sarah/assignees/ben")
            await ana.post("/clients", json={"id": "john", "name": "John"})
            for i in range(5):
                await store.append_turn(org, "ana", "sarah", "c1", _turn(i))
            for conv in ("c2", "c3"):
                await store.append_turn(org, "ana", "sarah", conv, _turn(10))
            await store.append_turn(org, "ben", "sarah", "c9", _turn(20, cost=0.5))
            await store.append_turn(org, "ana", "john", "c1", _turn(30))

            page = (await ana.get("/clients/sarah/conversations", params={"limit": 2})).json()
            assert [c["conversation_id"] for c in page["items"]] == ["c3", "c2"]
            assert (page["total"], page["offset"], page["next_offset"]) == (3, 0, 2)
            last = (await ana.get("/clients/sarah/conversations",
                                  params={"offset": 2, "limit": 2})).json()
            assert [c["conversation_id"] for c in last["items"]] == ["c1"]
            assert last["next_offset"] is None
            # Conversations are the caller's own: ben sees only his.
            assert [c["conversation_id"] for c in (await ben.get(
                "/clients/sarah/conversations")).json()["items"]] == ["c9"]

            turns = (await ana.get("/clients/sarah/conversations/c1/turns",
                                   params={"offset": 1, "limit": 3})).json()
            assert [t["turn_id"] for t in turns["items"]] == ["t1", "t2", "t3"]
            assert (turns["total"], turns["next_offset"]) == (5, 4)
            assert turns["items"][0]["user_text"] == "question 1"
            tail = (await ana.get("/clients/sarah/conversations/c1/turns",
                                  params={"offset": 4})).json()
            assert [t["turn_id"] for t in tail["items"]] == ["t4"] and not tail["next_offset"]
            assert (await ben.get("/clients/sarah/conversations/c1/turns")).status_code == 404
            bad = await ana.get("/clients/sarah/conversations", params={"limit": 0})
            assert bad.status_code == 422 and bad.json()["detail"].startswith("query.limit: ")
            # Past any page, and past the 64-bit index Valkey takes: a typed 422, not a 503.
            for path in ("/clients/sarah/conversations", "/clients/sarah/conversations/c1/turns",
                         "/clients/sarah/audit"):
                far = await ana.get(path, params={"offset": 10**20})
                assert far.status_code == 422, (path, far.text)
                assert far.json()["detail"].startswith("query.offset: ")
            assert (await ben.get("/clients/john/conversations")).status_code == 403

            # Usage: org (admin), user (self or admin), client (access).
            sarah = (await ana.get("/clients/sarah/usage")).json()
            assert sarah["scope"] == "client" and sarah["subject_id"] == "sarah"
            assert (sarah["turns"], sarah["input_tokens"], sarah["output_tokens"],
                    sarah["cache_read_input_tokens"]) == (8, 800, 80, 320)
            assert sarah["cost_usd"] == pytest.approx(0.007 + 0.5)
            mine = (await ana.get("/usage/users/ana")).json()
            assert (mine["turns"], mine["input_tokens"]) == (8, 800)
            assert mine["cost_usd"] == pytest.approx(0.008)
            assert (await ben.get("/usage/users/ana")).status_code == 403
            assert (await boss.get("/usage/users/ben")).json()["turns"] == 1
            assert (await boss.get("/usage/users/nobody")).status_code == 404
            assert (await ana.get("/usage")).status_code == 403
            total = (await boss.get("/usage")).json()
            assert (total["scope"], total["subject_id"], total["turns"]) == ("org", org, 9)
            assert total["cost_usd"] == pytest.approx(0.508)
            assert (await ben.get("/clients/john/usage")).status_code == 403
    finally:
        await store.close()
