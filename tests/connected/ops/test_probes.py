"""Worker probes: /healthz, /readyz and /metrics on `http_port`, answering while start-up is
still running and reporting ready only once it is done and NATS and Valkey answer."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from switchboard_cli.embedded import free_port
from switchboard_common.ops import Readiness, ops_app
from switchboard_context.main import build_app
from switchboard_context.settings import Settings

pytestmark = pytest.mark.connected


async def test_readyz_is_503_until_started_then_follows_its_checks() -> None:
    readiness = Readiness()
    healthy = True

    async def dependency() -> bool:
        return healthy

    readiness.add("valkey", dependency)
    transport = httpx.ASGITransport(app=ops_app(readiness))
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
        assert (await http.get("/healthz")).status_code == 200
        r = await http.get("/readyz")
        assert r.status_code == 503 and r.json()["down"] == ["started"]
        readiness.started = True
        r = await http.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"] == {"started": True, "valkey": True}
        healthy = False
        r = await http.get("/readyz")
        assert r.status_code == 503 and r.json()["down"] == ["valkey"]


async def test_context_serves_probes_and_metrics(nats_url: str, valkey_url: str) -> None:
    port = free_port()
    app = build_app(Settings(nats_url=nats_url, valkey_url=valkey_url, http_port=port,
                             http_host="127.0.0.1"))
    await app.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"started": True, "nats": True, "valkey": True}
            metrics = (await http.get("/metrics")).text
            assert ('switchboard_jetstream_consumer_pending{consumer="context-turns",'
                    'state="pending",stream="SB_TURNS"} 0.0') in metrics
            assert 'switchboard_dlq_messages{consumer="context-turns",stream="SB_TURNS"}' \
                in metrics
    finally:
        await app.stop()
    await asyncio.sleep(0.1)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/healthz")
