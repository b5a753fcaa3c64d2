"""Helpers for gateway tests: the gateway in-process (uvicorn on a free port) against real
NATS and Valkey, and a `Backend` the test drives to play context + llm_stream: it takes
TurnRequests from SB_TURNS and publishes the turn's events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client
from nats.js.api import ConsumerConfig

from switchboard_cli.embedded import free_port
from switchboard_common.turns import (
    Delta,
    TurnDone,
    TurnRequest,
    TurnRetry,
    Usage,
    turn_events_subject,
)
from switchboard_gateway.main import create_app
from switchboard_gateway.settings import Settings


@dataclass
class Gateway:
    http: str
    settings: Settings
    app: FastAPI

    def ws(self, org: str, user: str = "va1") -> str:
        return self.http.replace("http://", "ws://") + f"/ws?org={org}&user={user}"


GatewayFactory = Callable[..., AbstractAsyncContextManager[Gateway]]


@asynccontextmanager
async def running_gateway(**overrides: Any) -> AsyncIterator[Gateway]:
    settings = Settings(**{"host": "127.0.0.1", "port": free_port(), "connect_timeout_s": 5.0,
                           "shutdown_grace_s": 2.0, "dev_credential": True,
                           # Every test's bad credentials come from 127.0.0.1 and count in
                           # the one Valkey of the session: a limit no single test reaches.
                           "auth_failure_limit": "10000/minute", **overrides})
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            ws="websockets-sansio", ws_max_size=settings.max_frame_bytes,
                            proxy_headers=True,
                            forwarded_allow_ips=settings.forwarded_allow_ips,
                            log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("gateway exited during start-up")
                await asyncio.sleep(0.02)
        yield Gateway(f"http://127.0.0.1:{settings.port}", settings, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


class Backend:
    """Plays context + llm_stream: reads turn commands, publishes the client stream."""

    def __init__(self, nc: Client, org: str) -> None:
        self.nc = nc
        self.org = org
        self._sub: Any = None

    async def start(self) -> None:
        js = self.nc.jetstream()
        self._sub = await js.pull_subscribe(
            f"turns.requested.{self.org}", durable=f"test-{self.org}", stream="SB_TURNS",
            config=ConsumerConfig(ack_wait=30))

    async def next_turn(self, timeout: float = 5.0) -> TurnRequest:
        msgs = await self._sub.fetch(1, timeout=timeout)
        await msgs[0].ack()
        return TurnRequest.model_validate_json(msgs[0].data)

    async def no_more_turns(self, wait: float = 0.5) -> bool:
        try:
            await self._sub.fetch(1, timeout=wait)
        except nats.errors.TimeoutError:
            return True
        return False

    async def emit(self, turn: TurnRequest, event: Any) -> bytes:
        data = event.model_dump_json().encode()
        await self.nc.publish(turn_events_subject(turn.org_id, turn.turn_id), data)
        await self.nc.flush()
        return data

    async def delta(self, turn: TurnRequest, seq: int, text: str) -> bytes:
        return await self.emit(turn, Delta(org_id=turn.org_id, turn_id=turn.turn_id, seq=seq,
                                           text=text))

    async def retry(self, turn: TurnRequest, seq: int) -> bytes:
        return await self.emit(turn, TurnRetry(org_id=turn.org_id, turn_id=turn.turn_id,
                                               seq=seq, attempt=2, reason="crash"))

    async def done(self, turn: TurnRequest, seq: int, text: str) -> bytes:
        return await self.emit(turn, TurnDone(
            org_id=turn.org_id, turn_id=turn.turn_id, seq=seq, model="fake-1",
            provider="fake", stop_reason="end_turn",
            usage=Usage(input_tokens=3, output_tokens=seq - 1), text=text))


def user_message(text: str = "hello", key: str = "k1", client: str = "sarah",
                 **extra: Any) -> str:
    return json.dumps({"type": "user_message", "client_id": client, "text": text,
                       "idempotency_key": key, **extra})


async def recv_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        frame: dict[str, Any] = json.loads(await ws.recv())
        return frame


def api(gateway: Gateway, org: str, user: str) -> httpx.AsyncClient:
    """A REST client speaking as (org, user) with the dev credential."""
    return httpx.AsyncClient(base_url=gateway.http + "/v1",
                             headers={"X-Org": org, "X-User": user})
