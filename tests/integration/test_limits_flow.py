"""Consumption limits with every service a real process: a flood from one socket is refused
with typed frames while another org's turns all complete; the monthly token budget, counted by
context from the real turns, warns, stops turns at the limit and lets them through again when
an admin raises it; bad input is refused and the gateway keeps serving."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import websockets

from switchboard_cli.stack import Stack
from tests.integration.conftest import frames_until_terminal, send_message, ws_url
from tests.people import add_people

pytestmark = pytest.mark.integration


def api(stack: Stack, org: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.gateway_url + "/v1", timeout=30,
                             headers={"X-Org": org, "X-User": "va1"})


async def new_org(stack: Stack, prefix: str) -> str:
    org = f"{prefix}{uuid.uuid4().hex[:8]}"
    await add_people(stack.store_url, org, ("va1",))
    async with api(stack, org) as http:
        assert (await http.post("/clients", json={"id": "sarah", "name": "Sarah"})
                ).status_code == 201
    return org


async def test_a_flood_is_refused_while_another_org_completes_every_turn(
        stack: Stack) -> None:
    noisy, quiet = await new_org(stack, "noisy"), await new_org(stack, "quiet")
    async with api(stack, noisy) as http:
        assert (await http.put("/limits", json={"turns_per_minute_user": 20})
                ).status_code == 200

    async def flood() -> list[str]:
        async with websockets.connect(ws_url(stack, org=noisy)) as ws:
            for i in range(150):
                await ws.send(json.dumps({"type": "user_message", "client_id": "sarah",
                                          "text": "spam", "idempotency_key": f"n{i}"}))
            seen: list[str] = []
            async with asyncio.timeout(60):
                while len([s for s in seen if s != "delta"]) < 150 + 8:
                    frame = json.loads(await ws.recv())
                    seen.append(frame.get("code") or frame["type"])
                    if seen.count("turn_completed") + seen.count("rate_limited") >= 150:
                        break
            return seen

    async def quiet_turns() -> list[dict[str, Any]]:
        async def one(i: int) -> dict[str, Any]:
            async with websockets.connect(ws_url(stack, org=quiet)) as ws:
                await send_message(ws, f"Quiet question {i}", client="sarah")
                return (await frames_until_terminal(ws, timeout=60))[-1]
        return list(await asyncio.gather(*(one(i) for i in range(10))))

    seen, done = await asyncio.gather(flood(), quiet_turns())
    assert [f["type"] for f in done] == ["turn_completed"] * 10
    assert seen.count("rate_limited") >= 130
    assert seen.count("turn_started") <= 20


async def test_the_monthly_budget_warns_stops_and_reopens(stack: Stack) -> None:
    org = await new_org(stack, "budget")
    async with websockets.connect(ws_url(stack, org=org)) as ws:
        await send_message(ws, "Hello there, how are you today?")
        first = await frames_until_terminal(ws)
        used = sum(first[-1]["usage"].values())
        assert used > 0
        async with api(stack, org) as http:
            # Budget just above what one turn used: the next turn warns, the one after stops.
            put = await http.put("/limits", json={"monthly_token_budget": used + 1,
                                                  "budget_warning_fraction": 0.5})
            assert put.status_code == 200 and put.json()["used_tokens"] == used
        await asyncio.sleep(5.5)  # the gateway's cached limits expire (GATEWAY_LIMITS_CACHE_S)
        key = await send_message(ws, "Second question, please")
        second = await frames_until_terminal(ws)
        warning = [f for f in second if f["type"] == "budget_warning"]
        assert warning and warning[0]["idempotency_key"] == key
        await send_message(ws, "Third question, please", key="third")
        stop = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert stop["code"] == "quota_exceeded" and stop["retry_after_s"] > 0
        async with api(stack, org) as http:
            assert (await http.put("/limits", json={"monthly_token_budget": 10**9})
                    ).status_code == 200
        await asyncio.sleep(5.5)
        await send_message(ws, "Third question, please", key="third")
        third = await frames_until_terminal(ws)
        assert third[-1]["type"] == "turn_completed"


async def test_bad_input_is_refused_and_the_gateway_keeps_serving(stack: Stack) -> None:
    org = await new_org(stack, "bad")
    async with websockets.connect(ws_url(stack, org=org)) as ws:
        await ws.send('{"type": "user_message", "x": ' + "[" * 999 + "]" * 999 + "}")
        assert json.loads(await ws.recv())["code"] == "too_deep"
        await send_message(ws, "Still there?")
        assert (await frames_until_terminal(ws))[-1]["type"] == "turn_completed"
    async with api(stack, org) as http:
        big = await http.post("/clients", content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
                              headers={"content-type": "application/json"})
        assert big.status_code == 413
        assert (await http.get("/actions/x:effect")).status_code == 422
        assert (await http.get("/clients")).status_code == 200
