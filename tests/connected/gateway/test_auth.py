"""Authentication at the edge against real NATS + Valkey and a local identity provider:
every operation refuses anonymous callers, each kind of bad credential is refused with a
message that names the problem (never the secret), sessions, tickets, API keys, the dev
credential's gating, Origin/CORS and the per-address failure limit."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as redis
import websockets
from pydantic import ValidationError

from switchboard_common.credentials import SigninLinks
from switchboard_gateway.settings import Settings
from tests.connected.gateway.support import Gateway, GatewayFactory, recv_json, user_message
from tests.fakes.fake_idp import AUDIENCE, FakeIdp

pytestmark = pytest.mark.connected

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
"""Probes answer anyone (Kubernetes calls them without credentials); they reveal nothing."""


@pytest.fixture
def idp() -> Iterator[FakeIdp]:
    with FakeIdp() as server:
        yield server


@pytest.fixture
async def oidc_gateway(gateway_factory: GatewayFactory, idp: FakeIdp) -> AsyncIterator[Gateway]:
    async with gateway_factory(oidc_issuer=idp.issuer, oidc_audience=AUDIENCE,
                               oidc_jwks_refetch_s=0) as gw:
        yield gw


async def sign_in(gw: Gateway, org: str, user: str) -> dict[str, Any]:
    """What the printed link does: a one-time token, traded for a session."""
    client = redis.Redis.from_url(gw.settings.valkey_url)
    token = await SigninLinks(client).issue(org, user, 60)
    await client.aclose()
    async with httpx.AsyncClient(base_url=gw.http) as http:
        response = await http.post("/v1/auth/signin", json={"token": token})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        again = await http.post("/v1/auth/signin", json={"token": token})
        assert again.status_code == 401 and token not in again.text
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_operation_refuses_anonymous_callers(gateway_factory: GatewayFactory
                                                         ) -> None:
    """A new route without authentication fails here."""
    async with gateway_factory(dev_credential=False) as gw, \
            httpx.AsyncClient(base_url=gw.http) as http:
        spec = (await http.get("/openapi.json")).json()
        checked = 0
        for path, item in spec["paths"].items():
            for method in item:
                if (method.upper(), path) in PUBLIC:
                    continue
                url = path
                for param in item[method].get("parameters", []):
                    if param["in"] == "path":
                        url = url.replace("{" + param["name"] + "}", "x1")
                body = {"token": "not-a-real-token"} if path == "/v1/auth/signin" else {}
                response = await http.request(method.upper(), url, json=body)
                assert response.status_code == 401, (method, path, response.text)
                checked += 1
        assert checked > 40
        async with websockets.connect(gw.http.replace("http", "ws") + "/ws") as ws:
            frame = await recv_json(ws)
            assert frame["code"] == "unauthorized" and "missing credential" in frame["message"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_dev_credential_off_refuses_names(gateway_factory: GatewayFactory, org: str
                                                ) -> None:
    async with gateway_factory(dev_credential=False) as gw, \
            httpx.AsyncClient(base_url=gw.http) as http:
        r = await http.get("/v1/me", headers={"X-Org": org, "X-User": "boss"})
        assert r.status_code == 401 and "GATEWAY_DEV_CREDENTIAL" in r.json()["detail"]
        async with websockets.connect(gw.ws(org, "boss")) as ws:
            assert (await recv_json(ws))["code"] == "unauthorized"


def test_dev_credential_only_in_development_on_loopback() -> None:
    production: dict[str, Any] = {"environment": "production", "nats_user": "gateway",
                                  "nats_password": "p" * 16, "valkey_password": "v" * 16}
    with pytest.raises(ValidationError, match="only allowed when SWITCHBOARD_ENV=development"):
        Settings(dev_credential=True, session_secret="s" * 32, **production)
    with pytest.raises(ValidationError, match="loopback"):
        Settings(dev_credential=True, host="0.0.0.0")
    with pytest.raises(ValidationError, match="GATEWAY_SESSION_SECRET is required"):
        Settings(**production)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(session_secret="short", **production)
    assert Settings(dev_credential=True, host="::1").dev_credential


def test_gateway_process_refuses_to_start_with_an_exposed_dev_credential() -> None:
    env = {**os.environ, "GATEWAY_DEV_CREDENTIAL": "true", "GATEWAY_HOST": "0.0.0.0"}
    done = subprocess.run([sys.executable, "-m", "switchboard_gateway"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "only allowed on a loopback bind" in done.stderr


async def test_session_signin_me_ticket_and_signout(gateway: Gateway, org: str) -> None:
    session = await sign_in(gateway, org, "ana")
    assert (session["org"], session["user"], session["role"]) == (org, "ana", "member")
    async with httpx.AsyncClient(base_url=gateway.http, headers=bearer(session["session"])
                                 ) as http:
        me = (await http.get("/v1/auth/me")).json()
        assert me == {"org": org, "user": "ana", "role": "member", "auth": "session"}
        ticket = (await http.post("/v1/auth/ws-ticket")).json()
        assert ticket["expires_in_s"] == 30
        url = gateway.http.replace("http", "ws") + f"/ws?ticket={ticket['ticket']}"
        async with websockets.connect(url) as ws:
            await ws.send("{")
            assert (await recv_json(ws))["code"] == "invalid_json"  # authenticated, usable
        async with websockets.connect(url) as ws:  # one use only
            frame = await recv_json(ws)
            assert frame["code"] == "unauthorized" and "ticket" in frame["message"]
            assert ticket["ticket"] not in frame["message"]
        assert (await http.post("/v1/auth/signout")).status_code == 204
        revoked = await http.get("/v1/auth/me")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
        assert session["session"] not in revoked.text


async def test_forged_and_expired_sessions_are_refused(gateway: Gateway, org: str) -> None:
    forged = jwt.encode({"iss": "switchboard", "aud": "switchboard-session", "sub": "boss",
                         "org": org, "jti": "x", "exp": 2_000_000_000}, "w" * 32,
                        algorithm="HS256")
    secret = gateway.settings.session_secret
    assert secret is not None
    expired = jwt.encode({"iss": "switchboard", "aud": "switchboard-session", "sub": "boss",
                          "org": org, "jti": "y", "exp": 1_000_000_000},
                         secret.get_secret_value(), algorithm="HS256")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        for token, words in ((forged, "signature is invalid"), (expired, "expired"),
                             ("garbage", "malformed"), ("a.b.c", "malformed")):
            r = await http.get("/v1/auth/me", headers=bearer(token))
            assert r.status_code == 401 and words in r.json()["detail"], (words, r.text)
            assert token not in r.text
        r = await http.get("/v1/auth/me", headers={"Authorization": "Basic abc"})
        assert r.status_code == 401 and "malformed Authorization" in r.json()["detail"]


async def test_oidc_tokens_verified_against_the_jwks(oidc_gateway: Gateway, idp: FakeIdp,
                                                     org: str) -> None:
    gw = oidc_gateway
    async with httpx.AsyncClient(base_url=gw.http) as http:
        good = idp.token(org=org, sub="auth0|5f7c", role=["staff", "admin"])
        me = (await http.get("/v1/auth/me", headers=bearer(good))).json()
        assert (me["org"], me["role"], me["auth"]) == (org, "admin", "oidc")
        assert me["user"].startswith("u-")  # not our id syntax: a stable derived id
        unsigned = jwt.encode({"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "org_id": org,
                               "exp": 2_000_000_000}, None, algorithm="none")
        cases = [
            (idp.token(org=org, sub="a", exp_in=-120), "token expired"),
            (idp.token(org=org, sub="a", audience="someone-else"), "audience"),
            (idp.token(org=org, sub="a", issuer="https://evil.example"), "issuer"),
            (idp.token(org=org, sub="a", key=idp.foreign_key()), "signature is invalid"),
            (idp.token(org=org, sub="a", kid="nosuchkey"), "unknown key"),
            (unsigned, "algorithm 'none'"),
        ]
        for token, words in cases:
            r = await http.get("/v1/auth/me", headers=bearer(token))
            assert r.status_code == 401 and words in r.json()["detail"], (words, r.text)
            assert token not in r.text


async def test_identity_provider_users_are_mirrored_for_assignment(
        oidc_gateway: Gateway, idp: FakeIdp, org: str) -> None:
    async with httpx.AsyncClient(base_url=oidc_gateway.http + "/v1") as http:
        boss = bearer(idp.token(org=org, sub="carol", role="admin"))
        member = bearer(idp.token(org=org, sub="dave", role="member"))
        assert (await http.get("/auth/me", headers=member)).json()["role"] == "member"
        users = {u["id"]: u["role"] for u in (await http.get("/users", headers=boss)).json()}
        assert (users["carol"], users["dave"]) == ("admin", "member")
        assert (await http.post("/clients", headers=boss, json={"id": "sarah", "name": "S"})
                ).status_code == 201
        assigned = await http.post("/clients/sarah/assignees/dave", headers=boss)
        assert assigned.status_code == 200, assigned.text
        assert (await http.get("/clients/sarah", headers=member)).status_code == 200
        # The role follows the token: promoted at the provider, admin here.
        promoted = bearer(idp.token(org=org, sub="dave", role="admin", jti="new"))
        assert (await http.get("/auth/me", headers=promoted)).json()["role"] == "admin"


async def test_jwks_rotation_and_outage(oidc_gateway: Gateway, idp: FakeIdp, org: str) -> None:
    async with httpx.AsyncClient(base_url=oidc_gateway.http) as http:
        first = idp.token(org=org, sub="ana")
        assert (await http.get("/v1/auth/me", headers=bearer(first))).status_code == 200
        fetched = idp.jwks_requests
        # Rotation: a token with a new key id makes the gateway refetch the key set once.
        idp.rotate()
        rotated = idp.token(org=org, sub="ana")
        assert (await http.get("/v1/auth/me", headers=bearer(rotated))).status_code == 200
        assert idp.jwks_requests == fetched + 1
        # Outage: a token signed with a cached key still verifies; an unknown key fails closed.
        idp.down = True
        again = idp.token(org=org, sub="ben")
        assert (await http.get("/v1/auth/me", headers=bearer(again))).status_code == 200
        idp.rotate()
        unknown = await http.get("/v1/auth/me", headers=bearer(idp.token(org=org, sub="ben")))
        assert unknown.status_code == 401 and "unavailable" in unknown.json()["detail"]


async def test_org_a_cannot_read_or_decide_org_b(gateway: Gateway, org: str) -> None:
    other = org + "x"
    own = await sign_in(gateway, org, "boss")
    theirs = await sign_in(gateway, other, "mallory")
    async with httpx.AsyncClient(base_url=gateway.http + "/v1",
                                 headers=bearer(theirs["session"])) as b, \
            httpx.AsyncClient(base_url=gateway.http + "/v1", headers=bearer(own["session"])
                              ) as a:
        assert (await b.post("/clients", json={"id": "secret", "name": "B's client"})
                ).status_code == 201
        for method, path in (("GET", "/clients/secret"), ("GET", "/clients/secret/skills"),
                             ("GET", "/clients/secret/conversations"),
                             ("GET", "/clients/secret/actions")):
            r = await a.request(method, path)
            assert r.status_code == 404 and "B's client" not in r.text, (path, r.text)
        assert "secret" not in [c["id"] for c in (await a.get("/clients")).json()]
        decided = await a.post("/actions/anything/decision", json={"decision": "approve"})
        assert decided.status_code == 404
        assert [u["id"] for u in (await a.get("/users")).json()] == [
            "ana", "ben", "boss", "intruder", "va1", "va2"]


async def test_member_gets_403_on_admin_operations(gateway: Gateway, org: str) -> None:
    session = await sign_in(gateway, org, "ana")
    async with httpx.AsyncClient(base_url=gateway.http + "/v1",
                                 headers=bearer(session["session"])) as ana:
        for method, path, body in (("POST", "/users", {"id": "zed"}),
                                   ("POST", "/invites", {"id": "zed"}),
                                   ("POST", "/users/ben/signin-link", None),
                                   ("POST", "/keys", {"scopes": ["chat"]}),
                                   ("GET", "/keys", None), ("DELETE", "/keys/abc", None),
                                   ("PUT", "/skills/system", {})):
            r = await ana.request(method, path, json=body)
            assert r.status_code == 403 and "admin" in r.json()["detail"], (path, r.text)


async def test_api_keys_scopes_last_use_and_revocation(gateway: Gateway, org: str) -> None:
    admin = await sign_in(gateway, org, "boss")
    async with httpx.AsyncClient(base_url=gateway.http + "/v1",
                                 headers=bearer(admin["session"])) as boss:
        assert (await boss.post("/clients", json={"id": "sarah", "name": "Sarah"})
                ).status_code == 201
        created = await boss.post("/keys", json={"name": "crm", "scopes": ["chat"]})
        assert created.status_code == 201
        secret, key = created.json()["secret"], created.json()["key"]
        assert secret.startswith("sb_") and key["prefix"] == secret[:10]
        async with httpx.AsyncClient(base_url=gateway.http + "/v1", headers=bearer(secret)
                                     ) as crm:
            me = (await crm.get("/auth/me")).json()
            assert (me["user"], me["auth"], me["role"]) == ("boss", "api_key", "admin")
            # A chat-only key of an admin is not an admin key.
            refused = await crm.get("/keys")
            assert refused.status_code == 403 and "'admin' scope" in refused.json()["detail"]
            event = {"event_id": "e1", "source": "note", "text": "hello"}
            ingest = await crm.post("/clients/sarah/events", json={"events": [event]})
            assert ingest.status_code == 403 and "'ingest' scope" in ingest.json()["detail"]
            listed = (await boss.get("/keys")).json()
            assert [k["id"] for k in listed] == [key["id"]]
            assert listed[0]["last_used_at"] is not None and "secret" not in listed[0]
            assert secret not in json.dumps(listed)
            assert (await boss.delete(f"/keys/{key['id']}")).status_code == 204
            gone = await crm.get("/auth/me")
            assert gone.status_code == 401 and "revoked" in gone.json()["detail"]
        assert (await boss.delete(f"/keys/{key['id']}")).status_code == 404


async def test_invites_give_one_time_links(gateway: Gateway, org: str) -> None:
    admin = await sign_in(gateway, org, "boss")
    async with httpx.AsyncClient(base_url=gateway.http, headers=bearer(admin["session"])
                                 ) as boss:
        invited = await boss.post("/v1/invites", json={"id": "newbie", "display_name": "N"})
        assert invited.status_code == 201
        link = invited.json()["link"]
        assert link.startswith(gateway.http + "/#signin=")
        token = link.split("#signin=")[1]
        assert (await boss.post("/v1/invites", json={"id": "newbie"})).status_code == 409
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        session = (await http.post("/v1/auth/signin", json={"token": token})).json()
        assert (session["user"], session["role"]) == ("newbie", "member")


async def test_auth_failures_are_limited_per_address(gateway_factory: GatewayFactory, org: str
                                                     ) -> None:
    # A window of its own length: failures other tests sent from 127.0.0.1 count elsewhere.
    window = 100 + secrets.randbelow(900)
    async with gateway_factory(auth_failure_limit=f"3 per {window} seconds") as gw:
        # sign_in also replays its used link once: the first failure.
        valid = (await sign_in(gw, org, "boss"))["session"]
        async with httpx.AsyncClient(base_url=gw.http) as http:
            codes = [(await http.get("/v1/auth/me", headers=bearer(f"sb_guess{i}"))
                      ).status_code for i in range(3)]
            assert codes == [401, 401, 429]
            blocked = await http.get("/v1/auth/me", headers=bearer(valid))
            assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
            # Without any credential nothing is guessed: still 429 while blocked.
            async with websockets.connect(gw.ws(org, "boss")) as ws:
                frame = await recv_json(ws)
                assert (frame["code"], frame["retryable"]) == ("unauthorized", True)


async def test_behind_a_trusted_proxy_each_client_address_counts_alone(
        gateway_factory: GatewayFactory) -> None:
    window = 100 + secrets.randbelow(900)
    async with gateway_factory(auth_failure_limit=f"2 per {window} seconds") as gw, \
            httpx.AsyncClient(base_url=gw.http) as http:
        def via(address: str) -> dict[str, str]:  # 127.0.0.1 is a trusted proxy by default
            return {**bearer("sb_guess"), "X-Forwarded-For": address}

        attacker = f"198.51.100.{secrets.randbelow(250) + 1}"
        codes = [(await http.get("/v1/auth/me", headers=via(attacker))).status_code
                 for _ in range(3)]
        assert codes == [401, 401, 429]
        bystander = await http.get("/v1/auth/me", headers=via("203.0.113.7"))
        assert bystander.status_code == 401  # refused on its own merits, not blocked


async def test_origin_allow_list_for_socket_and_cors(gateway_factory: GatewayFactory, org: str
                                                     ) -> None:
    async with gateway_factory(allowed_origins=["https://app.example"]) as gw:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(gw.ws(org), origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        for origin in ("https://app.example", gw.http):  # the list, and the gateway's own page
            async with websockets.connect(gw.ws(org), origin=origin) as ws:
                await ws.send(user_message("hi", client="sarah"))
                assert (await recv_json(ws))["type"] in ("turn_started", "error")
        async with httpx.AsyncClient(base_url=gw.http) as http:
            headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                       "Access-Control-Request-Headers": "authorization"}
            preflight = await http.options("/v1/auth/me", headers=headers)
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "https://app.example"
            evil = await http.options("/v1/auth/me", headers={**headers,
                                                              "Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in evil.headers


async def test_revocation_reaches_every_replica_at_once(gateway_factory: GatewayFactory,
                                                        org: str) -> None:
    """Both replicas cache verified credentials for 5 minutes; a sign-out or key revocation on
    one is announced over NATS, so the other refuses the credential within moments."""
    shared = {"auth_cache_s": 300, "session_secret": secrets.token_urlsafe(32)}
    async with gateway_factory(**shared) as one, gateway_factory(**shared) as two:
        session = (await sign_in(one, org, "boss"))["session"]
        async with httpx.AsyncClient(base_url=one.http, headers=bearer(session)) as first, \
                httpx.AsyncClient(base_url=two.http, headers=bearer(session)) as second:
            key = (await first.post("/v1/keys", json={"scopes": ["chat"]})).json()
            async with httpx.AsyncClient(base_url=two.http, headers=bearer(key["secret"])
                                         ) as system:
                assert (await system.get("/v1/auth/me")).status_code == 200  # now cached
                assert (await second.get("/v1/auth/me")).status_code == 200
                assert (await first.delete(f"/v1/keys/{key['key']['id']}")).status_code == 204
                assert (await first.post("/v1/auth/signout")).status_code == 204
                for client in (system, second):
                    async with asyncio.timeout(2):
                        while (await client.get("/v1/auth/me")).status_code != 401:
                            await asyncio.sleep(0.02)


async def test_open_sockets_close_when_their_credential_is_revoked(gateway: Gateway, org: str
                                                                   ) -> None:
    session = (await sign_in(gateway, org, "boss"))["session"]
    base = gateway.http.replace("http", "ws") + "/ws"
    async with httpx.AsyncClient(base_url=gateway.http, headers=bearer(session)) as http:
        ticket = (await http.post("/v1/auth/ws-ticket")).json()["ticket"]
        key = (await http.post("/v1/keys", json={"scopes": ["chat"]})).json()
        async with websockets.connect(f"{base}?ticket={ticket}") as by_session, \
                websockets.connect(base, additional_headers=bearer(key["secret"])) as by_key, \
                websockets.connect(gateway.ws(org, "boss")) as by_dev:
            assert (await http.delete(f"/v1/keys/{key['key']['id']}")).status_code == 204
            assert (await http.post("/v1/auth/signout")).status_code == 204
            for ws in (by_key, by_session):
                frame = await recv_json(ws)
                assert (frame["code"], frame["message"]) == (
                    "unauthorized", "credential revoked; sign in again")
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            await by_dev.send("{")  # another credential's socket is untouched
            assert (await recv_json(by_dev))["code"] == "invalid_json"
