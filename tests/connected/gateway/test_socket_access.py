"""The WebSocket applies the REST access rules to `user_message`."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.connected.gateway.support import (
    Gateway,
    GatewayFactory,
    api,
    recv_json,
    user_message,
)

pytestmark = pytest.mark.connected


async def test_unknown_and_unassigned_clients_are_refused_without_provisioning(
        gateway_factory: GatewayFactory, org: str) -> None:
    async with gateway_factory(auto_provision_clients=False) as gw, \
            api(gw, org, "boss") as boss, api(gw, org, "ana") as ana:
        await boss.get("/me")
        await ana.post("/clients", json={"id": "sarah", "name": "Sarah Chen"})
        await boss.post("/clients", json={"id": "john", "name": "John Park"})
        async with websockets.connect(gw.ws(org, "boss")) as ws:
            await ws.send(user_message("hi", key="k1", client="ghost"))
            frame = await recv_json(ws)
            assert (frame["type"], frame["code"], frame["idempotency_key"]) == (
                "error", "unknown_client", "k1")
            await ws.send(user_message("hi", key="k2", client="sarah"))  # admin: all clients
            assert (await recv_json(ws))["type"] == "turn_started"
        async with websockets.connect(gw.ws(org, "ana")) as ws:
            await ws.send(user_message("hi", key="k3", client="john"))
            frame = await recv_json(ws)
            assert (frame["code"], frame["retryable"]) == ("forbidden", False)
            assert "John Park" not in frame["message"]
            await ws.send(user_message("hi", key="k4", client="ghost"))
            assert (await recv_json(ws))["code"] == "forbidden"
            # The socket stays usable.
            await ws.send(user_message("hi", key="k5", client="sarah"))
            started = await recv_json(ws)
            assert (started["type"], started["client_id"]) == ("turn_started", "sarah")
        assert (await ana.get("/clients/ghost")).status_code == 403
        assert (await boss.get("/clients/ghost")).status_code == 404


async def test_development_default_provisions_unknown_clients(gateway: Gateway, org: str
                                                              ) -> None:
    assert gateway.settings.auto_provision_clients is True
    async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana:
        await boss.get("/me")
        await boss.post("/clients", json={"id": "john", "name": "John Park"})
        async with websockets.connect(gateway.ws(org, "ana")) as ws:
            await ws.send(user_message("hi", key="k1", client="newbie"))
            assert (await recv_json(ws))["type"] == "turn_started"
            # Provisioning never takes over an existing client.
            await ws.send(user_message("hi", key="k2", client="john"))
            assert (await recv_json(ws))["code"] == "forbidden"
        newbie = (await ana.get("/clients/newbie")).json()
        assert (newbie["name"], newbie["assigned_users"]) == ("newbie", ["ana"])


async def test_an_unassigned_user_is_refused_at_once_on_every_replica(
        gateway_factory: GatewayFactory, org: str) -> None:
    """The turn gate caches client records (adapters/client_cache.py): an unassignment made
    on one replica refuses the next turn there and on another replica that cached the record,
    without waiting for the cache's time bound."""
    async with gateway_factory(auto_provision_clients=False) as one, \
            gateway_factory(auto_provision_clients=False) as two, \
            api(one, org, "boss") as boss, api(one, org, "ana") as ana:
        await boss.get("/me")
        await ana.post("/clients", json={"id": "sarah", "name": "Sarah Chen"})
        async with websockets.connect(one.ws(org, "ana")) as on_one, \
                websockets.connect(two.ws(org, "ana")) as on_two:
            for i, ws in enumerate((on_one, on_two)):  # both replicas cache the record
                await ws.send(user_message("hi", key=f"a{i}", client="sarah"))
                assert (await recv_json(ws))["type"] == "turn_started"
            assert (await boss.delete("/clients/sarah/assignees/ana")).status_code == 200
            await on_one.send(user_message("hi", key="b1", client="sarah"))
            assert await _first_error(on_one) == "forbidden"
            for attempt in range(50):  # the other replica hears the announcement over NATS
                await on_two.send(user_message("hi", key=f"c{attempt}", client="sarah"))
                if await _first_error(on_two) == "forbidden":
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the other replica kept the stale client record")
            assert attempt < 25, attempt  # well under a second, not the 60 s bound
            await boss.post("/clients/sarah/assignees/ana")
            await on_one.send(user_message("hi", key="d1", client="sarah"))
            assert await _first_error(on_one) is None


async def _first_error(ws: websockets.ClientConnection) -> str | None:
    """The code of the first error frame about a new turn, or None once it started."""
    while True:
        frame = await recv_json(ws)
        if frame["type"] == "error" and frame["turn_id"] is None:
            return str(frame["code"])
        if frame["type"] == "turn_started":
            return None
