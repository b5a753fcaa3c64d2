"""The WebSocket applies the REST access rules to `user_message`."""

from __future__ import annotations

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
