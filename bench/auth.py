"""What authentication costs: the gateway in-process (uvicorn) on a real NATS and Valkey, with a
local identity provider (tests/fakes/fake_idp.py).

(a) `Authenticator.verify` alone, per credential kind: the first use of a credential (signature
    check plus its store lookup) and a cached one (what every later request pays);
(b) the whole edge check in-process (`Authenticator.authenticate`: header, cached verification,
    the user record) against the directory read every request did before authentication;
(c) end to end, `GET /v1/auth/me` over HTTP with each credential against the development
    credential (`X-Org`/`X-User`, which already did the same directory read before auth
    existed): the difference is the overhead per request;
(d) one WebSocket message's round trip (a frame the gateway answers at once) on a socket opened
    with a ticket against one opened with the development credential: a socket authenticates
    once, when it opens, so a message should cost nothing extra.
Prints p50/p99 tables. Usage: python bench/auth.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as redis
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_cli.embedded import start_nats, start_valkey  # noqa: E402
from switchboard_common.credentials import ApiKeys, Scope, SigninLinks  # noqa: E402
from switchboard_common.directory import Directory, User  # noqa: E402
from tests.connected.gateway.support import Gateway, running_gateway  # noqa: E402
from tests.fakes.fake_idp import AUDIENCE, FakeIdp  # noqa: E402

ORG, USER = "bench", "ana"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, values: list[float]) -> str:
    return f"| {name} | {len(values)} | {pct(values, 0.5):.1f} µs | {pct(values, 0.99):.1f} µs |"


async def timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1e6)
    return out


async def credentials(valkey_url: str, http: httpx.AsyncClient, idp: FakeIdp) -> dict[str, str]:
    client = redis.Redis.from_url(valkey_url)
    await Directory(client).add_user(ORG, User(id=USER, role="admin"))
    key, _ = await ApiKeys(client).create(ORG, USER, [Scope.CHAT, Scope.ADMIN])
    link = await SigninLinks(client).issue(ORG, USER, 60)
    await client.aclose()
    session = (await http.post("/v1/auth/signin", json={"token": link})).json()["session"]
    return {"session": session, "api key": key,
            "oidc": idp.token(org=ORG, sub=USER, role="admin", exp_in=3600)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    n = parser.parse_args().requests
    data = Path(tempfile.mkdtemp(prefix="sb-auth-"))
    nats_server, valkey_server = start_nats(data), start_valkey(data, persist=False)
    try:
        with FakeIdp() as idp:
            async with running_gateway(nats_url=nats_server.url, valkey_url=valkey_server.url,
                                       oidc_issuer=idp.issuer, oidc_audience=AUDIENCE,
                                       log_level="ERROR") as gw, \
                    httpx.AsyncClient(base_url=gw.http) as http:
                creds = await credentials(valkey_server.url, http, idp)
                await report(gw, http, creds, n)
    finally:
        valkey_server.stop()
        nats_server.stop()


async def report(gw: Gateway, http: httpx.AsyncClient, creds: dict[str, str], n: int) -> None:
    auth = gw.app.state.auth
    print("| verify (in-process) | calls | p50 | p99 |\n|---|---|---|---|")
    for name, token in creds.items():
        first = []
        for _ in range(min(n, 300)):
            auth.forget(lambda _who: True)
            start = time.perf_counter()
            await auth.verify(token)
            first.append((time.perf_counter() - start) * 1e6)
        print(row(f"{name}, first use", first))
        print(row(f"{name}, cached", await timed(lambda t=token: auth.verify(t), n)))

    # The whole edge check in-process, interleaved with what every request did before
    # authentication existed (read the caller's user record): the difference is the overhead.
    directory = gw.app.state.directory
    pairs: dict[str, list[float]] = {"directory read alone (before)": []}
    pairs.update({f"authenticate(), {name}, cached": [] for name in creds})
    for _ in range(n):
        start = time.perf_counter()
        await directory.get_user(ORG, USER)
        pairs["directory read alone (before)"].append((time.perf_counter() - start) * 1e6)
        for name, token in creds.items():
            start = time.perf_counter()
            await auth.authenticate("127.0.0.1", f"Bearer {token}")
            pairs[f"authenticate(), {name}, cached"].append((time.perf_counter() - start) * 1e6)
    before = pairs["directory read alone (before)"]
    print("\n| edge check (in-process) | calls | p50 | p99 | overhead p50 | overhead p99 |")
    print("|---|---|---|---|---|---|")
    for name, values in pairs.items():
        print(f"| {name} | {n} | {pct(values, .5):.0f} µs | {pct(values, .99):.0f} µs | "
              f"{pct(values, .5) - pct(before, .5):+.0f} µs | "
              f"{pct(values, .99) - pct(before, .99):+.0f} µs |")

    # Interleaved, one request of each kind per round, so load from other work on the machine
    # hits every kind alike; the development credential is the baseline.
    kinds = {"dev credential": {"X-Org": ORG, "X-User": USER},
             **{name: {"Authorization": f"Bearer {token}"} for name, token in creds.items()}}
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    for round_ in range(n + 200):
        for name, headers in kinds.items():
            start = time.perf_counter()
            await http.get("/v1/auth/me", headers=headers)
            if round_ >= 200:  # warm-up
                samples[name].append((time.perf_counter() - start) * 1e6)
    base = samples.pop("dev credential")
    print("\n| GET /v1/auth/me | requests | p50 | p99 | overhead p50 vs dev | overhead p99 |")
    print("|---|---|---|---|---|---|")
    print(f"| dev credential | {n} | {pct(base, .5):.0f} µs | {pct(base, .99):.0f} µs | - | - |")
    for name, values in samples.items():
        print(f"| {name} | {n} | {pct(values, .5):.0f} µs | {pct(values, .99):.0f} µs | "
              f"{pct(values, .5) - pct(base, .5):+.0f} µs | "
              f"{pct(values, .99) - pct(base, .99):+.0f} µs |")

    print("\n| WebSocket message round trip | messages | p50 | p99 |\n|---|---|---|---|")
    ws_base = gw.http.replace("http", "ws") + "/ws"
    ticket = (await http.post("/v1/auth/ws-ticket", headers={
        "Authorization": f"Bearer {creds['session']}"})).json()["ticket"]
    async with websockets.connect(f"{ws_base}?org={ORG}&user={USER}") as dev_ws, \
            websockets.connect(f"{ws_base}?ticket={ticket}") as ticket_ws:
        sockets = {"dev credential": dev_ws, "session ticket": ticket_ws}
        rtts: dict[str, list[float]] = {name: [] for name in sockets}
        for round_ in range(n + 200):
            for name, sock in sockets.items():
                start = time.perf_counter()
                await sock.send("{")
                await sock.recv()
                if round_ >= 200:
                    rtts[name].append((time.perf_counter() - start) * 1e6)
    for name, values in rtts.items():
        print(f"| {name} | {n} | {pct(values, .5):.0f} µs | {pct(values, .99):.0f} µs |")

if __name__ == "__main__":
    asyncio.run(main())
