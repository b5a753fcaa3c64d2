"""Operations on real processes: probes and metrics on every service."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets

from switchboard_cli.stack import SERVICES, Stack
from tests.integration.conftest import converse, ws_url

pytestmark = pytest.mark.integration


async def test_every_service_serves_probes_and_metrics(stack: Stack) -> None:
    assert set(stack.probe_urls) == set(SERVICES)
    async with httpx.AsyncClient(timeout=5) as http:
        for name, url in stack.probe_urls.items():
            assert (await http.get(url + "/healthz")).status_code == 200, name
            ready = await http.get(url + "/readyz")
            assert ready.status_code == 200 and ready.json()["ready"], (name, ready.text)
            metrics = await http.get(url + "/metrics")
            assert metrics.headers["content-type"].startswith("text/plain"), name
            assert "switchboard_rate_limit_refusals_total" in metrics.text, name


async def test_open_sockets_are_counted(stack: Stack) -> None:
    async def sockets(http: httpx.AsyncClient) -> float:
        text = (await http.get(stack.gateway_url + "/metrics")).text
        line = next(x for x in text.splitlines() if x.startswith("switchboard_open_sockets "))
        return float(line.split()[1])

    async with httpx.AsyncClient(timeout=5) as http:
        before = await sockets(http)
        async with websockets.connect(ws_url(stack)), websockets.connect(ws_url(stack)):
            assert await sockets(http) == before + 2
        for _ in range(50):
            if await sockets(http) == before:
                break
            await asyncio.sleep(0.05)
        assert await sockets(http) == before


async def test_metrics_name_no_org_client_or_turn(stack: Stack) -> None:
    """After a turn no service's metrics carry a client or turn id (subjects are labelled by
    family), and the gateway's, served on its public port, not even the org (only the workers'
    internal ports count tokens by org)."""
    frames = await converse(stack, "[[fake tokens=3]] hello", client="sarah")
    turn = frames[0]["turn_id"]
    async with httpx.AsyncClient(timeout=5) as http:
        for name, url in {**stack.probe_urls, "gateway": stack.gateway_url}.items():
            text = (await http.get(url + "/metrics")).text
            assert "switchboard_faststream" in text, name
            for secret in ("sarah", turn, *(["acme"] if name == "gateway" else [])):
                assert secret not in text, (name, secret)
