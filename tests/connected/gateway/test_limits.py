"""Consumption limits at the edge, against a real gateway, NATS and Valkey: per-user rates,
per-socket and per-user concurrency, sockets per user, monthly token budgets (warning, hard
stop, reset by an admin), ingest rates over REST (429 + Retry-After), a noisy tenant that
cannot starve another org, and frames nested too deep. Every refusal is typed and the socket
keeps serving."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats
import pytest
import redis.asyncio as redis
import websockets

from switchboard_common.conversations import month_usage_key
from switchboard_gateway.domain.limits import OrgLimits
from tests.connected.gateway.support import (
    Backend,
    GatewayFactory,
    api,
    recv_json,
    user_message,
)
from tests.people import add_people

pytestmark = pytest.mark.connected


async def frames_for(ws: Any, count: int) -> list[dict[str, Any]]:
    return [await recv_json(ws) for _ in range(count)]


async def test_a_users_turn_rate_is_limited_and_the_socket_keeps_serving(
        gateway_factory: GatewayFactory, nats_url: str, org: str) -> None:
    async with gateway_factory(limits=OrgLimits(turns_per_minute_user=3)) as gw:
        backend = Backend(await _nats(nats_url), org)
        await backend.start()
        async with websockets.connect(gw.ws(org)) as ws:
            for i in range(5):
                await ws.send(user_message(f"m{i}", key=f"k{i}"))
            frames = await frames_for(ws, 5)
            refused = [f for f in frames if f["type"] == "error"]
            assert len(refused) == 2
            assert {f["code"] for f in refused} == {"rate_limited"}
            assert all(0 < f["retry_after_s"] <= 60 and f["retryable"] for f in refused)
            assert sum(f["type"] == "turn_started" for f in frames) == 3
            # Another user of the same org still has their own allowance.
            async with websockets.connect(gw.ws(org, "va2")) as other:
                await other.send(user_message("hi", key="o1", client="mike"))
                assert (await recv_json(other))["type"] == "turn_started"
        await backend.nc.close()


async def test_concurrent_turns_per_socket_are_capped_and_freed_when_turns_end(
        gateway_factory: GatewayFactory, nats_url: str, org: str) -> None:
    async with gateway_factory(limits=OrgLimits(concurrent_turns_socket=2)) as gw:
        backend = Backend(await _nats(nats_url), org)
        await backend.start()
        async with websockets.connect(gw.ws(org)) as ws:
            for key in ("a", "b", "c"):
                await ws.send(user_message(key, key=key))
            frames = await frames_for(ws, 3)
            assert [f["code"] for f in frames if f["type"] == "error"] == ["rate_limited"]
            first = await backend.next_turn()
            await backend.done(first, 1, "ok")
            while (await recv_json(ws))["type"] != "turn_completed":
                pass
            await ws.send(user_message("d", key="d"))
            assert (await recv_json(ws))["type"] == "turn_started"
        await backend.nc.close()


async def test_sockets_per_user_are_capped(gateway_factory: GatewayFactory, org: str) -> None:
    async with gateway_factory(limits=OrgLimits(sockets_per_user=2)) as gw:
        async with websockets.connect(gw.ws(org)), websockets.connect(gw.ws(org)), \
                websockets.connect(gw.ws(org)) as third:
            frame = await recv_json(third)
            assert frame["code"] == "rate_limited" and frame["retry_after_s"] > 0
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await third.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        # Closed sockets free their places.
        async with websockets.connect(gw.ws(org)) as again:
            await again.send(user_message("hi", key="x"))
            assert (await recv_json(again))["type"] == "turn_started"


async def test_monthly_budget_warns_stops_and_is_reset_by_an_admin(
        gateway_factory: GatewayFactory, valkey: redis.Redis, nats_url: str, org: str) -> None:
    async with gateway_factory() as gw, api(gw, org, "boss") as admin, \
            api(gw, org, "ana") as member:
        assert (await admin.get("/limits")).json()["limits"]["monthly_token_budget"] is None
        refused = await member.put("/limits", json={"monthly_token_budget": 10})
        assert refused.status_code == 403
        # Past what the admission script compares exactly (a double): a typed 422.
        huge = await admin.put("/limits", json={"monthly_token_budget": 10**20})
        assert huge.status_code == 422
        assert huge.json()["detail"].startswith("monthly_token_budget: ")
        put = await admin.put("/limits", json={"monthly_token_budget": 1000})
        assert put.status_code == 200 and put.json()["limits"]["monthly_token_budget"] == 1000
        # Usage as context counts it when turns complete.
        await valkey.hset(month_usage_key(org), mapping={"input_tokens": 700,
                                                         "output_tokens": 150})
        async with websockets.connect(gw.ws(org)) as ws:
            await ws.send(user_message("one", key="w1"))
            warning, started = await frames_for(ws, 2)
            assert warning["type"] == "budget_warning" and warning["used_tokens"] == 850
            assert warning["budget_tokens"] == 1000 and started["type"] == "turn_started"
            await valkey.hincrby(month_usage_key(org), "output_tokens", 200)
            await ws.send(user_message("two", key="w2"))
            stop = await recv_json(ws)
            assert stop["code"] == "quota_exceeded" and stop["idempotency_key"] == "w2"
            assert stop["retry_after_s"] > 0
            assert (await member.get("/limits")).json()["used_tokens"] == 1050
            # The admin raises the budget: the same message goes through at once.
            await admin.put("/limits", json={"monthly_token_budget": 5000})
            await ws.send(user_message("two", key="w2"))
            assert (await recv_json(ws))["type"] == "turn_started"
            reset = await admin.put("/limits", json={"reset": True})
            assert reset.json()["limits"]["monthly_token_budget"] is None


async def test_ingest_is_rate_limited_per_caller_with_retry_after(
        gateway_factory: GatewayFactory, org: str) -> None:
    async with gateway_factory(limits=OrgLimits(ingest_events_per_minute=5)) as gw, \
            api(gw, org, "va1") as http:
        assert (await http.post("/clients", json={"id": "sarah", "name": "Sarah"})
                ).status_code == 201

        def batch(n: int) -> dict[str, Any]:
            return {"events": [{"event_id": uuid.uuid4().hex, "source": "email",
                                "text": f"mail {i}"} for i in range(n)]}

        assert (await http.post("/clients/sarah/events", json=batch(3))).status_code == 202
        limited = await http.post("/clients/sarah/events", json=batch(3))
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["code"] == "rate_limited"


async def test_a_noisy_tenant_cannot_starve_another_org(
        gateway_factory: GatewayFactory, nats_url: str, valkey_url: str) -> None:
    noisy, quiet = f"noisy{uuid.uuid4().hex[:8]}", f"quiet{uuid.uuid4().hex[:8]}"
    for tenant in (noisy, quiet):
        await add_people(valkey_url, tenant)
    async with gateway_factory() as gw:
        nc = await _nats(nats_url)
        backend = Backend(nc, quiet)
        await backend.start()

        async def answer_quiet_turns() -> None:
            for _ in range(10):
                turn = await backend.next_turn(timeout=20)
                await backend.done(turn, 1, "done")

        async def flood() -> list[str]:
            codes: list[str] = []
            async with websockets.connect(gw.ws(noisy)) as ws:
                for i in range(200):
                    await ws.send(user_message("spam", key=f"n{i}"))
                for _ in range(200):
                    frame = await recv_json(ws, timeout=20)
                    codes.append(frame.get("code") or frame["type"])
            return codes

        async def quiet_turns(name: str) -> list[str]:
            async with websockets.connect(gw.ws(quiet)) as ws:
                for i in range(5):
                    await ws.send(user_message("real work", key=f"{name}{i}"))
                done = []
                while len(done) < 5:
                    frame = await recv_json(ws, timeout=20)
                    assert frame["type"] != "error", frame
                    if frame["type"] == "turn_completed":
                        done.append(frame["turn_id"])
                return done

        answering = asyncio.create_task(answer_quiet_turns())
        codes, done_a, done_b = await asyncio.gather(flood(), quiet_turns("a"),
                                                     quiet_turns("b"))
        await answering
        assert len(done_a) + len(done_b) == 10  # every turn of the quiet org completed
        assert codes.count("turn_started") <= 8 and codes.count("rate_limited") >= 190
        await nc.close()


async def test_a_frame_nested_too_deep_is_refused_and_the_socket_stays_open(
        gateway_factory: GatewayFactory, org: str) -> None:
    deep = ('{"type": "user_message", "client_id": "sarah", "idempotency_key": "d", '
            '"text": "x", "extra": ' + "[" * 999 + "]" * 999 + "}")
    async with gateway_factory() as gw, websockets.connect(gw.ws(org)) as ws:
        await ws.send(deep)
        frame = await recv_json(ws)
        assert frame["code"] == "too_deep"
        await ws.send(user_message("still here", key="ok"))
        assert (await recv_json(ws))["type"] == "turn_started"


async def _nats(url: str) -> Any:
    return await nats.connect(url)
