"""Health, readiness, OpenAPI, the page and the REST turn view."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import websockets

from switchboard_cli.embedded import free_port
from switchboard_gateway.routes.page import CONTENT_SECURITY_POLICY
from tests.connected.gateway.support import Gateway, GatewayFactory, recv_json, user_message

pytestmark = pytest.mark.connected


async def test_health_ready_openapi_and_page(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "nats": True, "valkey": True, "down": []}
        spec = (await http.get("/openapi.json")).json()
        assert {"/healthz", "/readyz", "/v1/turns/{turn_id}"} <= set(spec["paths"])
        assert "Readiness" in spec["components"]["schemas"]
        assert (await http.get("/docs")).status_code == 200


async def test_the_built_web_app_is_served(gateway_factory: GatewayFactory,
                                           tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><script src="/assets/app-1.js">')
    (tmp_path / "assets" / "app-1.js").write_text("console.log(1)")
    async with gateway_factory(web_dir=tmp_path) as gw, httpx.AsyncClient(
            base_url=gw.http) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert page.headers["cache-control"] == "no-cache" and "/assets/app-1.js" in page.text
        # Answers are data: the page may fetch nothing an answer names (tests/unit/gateway/
        # test_page_security.py checks the policy itself).
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["referrer-policy"] == "no-referrer"
        script = await http.get("/assets/app-1.js")
        assert script.status_code == 200 and script.text == "console.log(1)"
    async with gateway_factory(web_dir=tmp_path / "missing") as gw, httpx.AsyncClient(
            base_url=gw.http) as http:
        page = await http.get("/")
        assert page.status_code == 503 and "npm run build" in page.text


async def test_readyz_503_names_valkey_when_it_is_down(gateway_factory: GatewayFactory) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with gateway_factory(valkey_url=closed, connect_timeout_s=0.3) as gw:
        async with httpx.AsyncClient(base_url=gw.http) as http:
            ready = await http.get("/readyz")
            assert (await http.get("/healthz")).status_code == 200
        assert ready.status_code == 503
        assert ready.json() == {"ready": False, "nats": True, "valkey": False,
                                "down": ["valkey"]}
        # Without Valkey the caller cannot be checked: a retryable error, then 1013.
        async with websockets.connect(gw.ws("acme")) as ws:
            frame = await recv_json(ws)
            assert (frame["code"], frame["retryable"]) == ("service_unavailable", True)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


async def test_rest_turn_view_is_scoped_to_the_caller(gateway: Gateway, org: str) -> None:
    async with websockets.connect(gateway.ws(org)) as ws:
        await ws.send(user_message("x"))
        turn_id = (await recv_json(ws))["turn_id"]
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        mine = await http.get(f"/v1/turns/{turn_id}", headers={"X-Org": org, "X-User": "va1"})
        assert mine.status_code == 200 and mine.json()["client_id"] == "sarah"
        theirs = await http.get(f"/v1/turns/{turn_id}", headers={"X-Org": org,
                                                                  "X-User": "va2"})
        assert theirs.status_code == 404
        bad = await http.get(f"/v1/turns/{turn_id}", headers={"X-Org": "a b"})
        assert bad.status_code == 401 and "invalid org" in bad.json()["detail"]
