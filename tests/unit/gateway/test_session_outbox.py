"""A socket's send side: frames leave in order, a writer task exists only while frames wait,
and a client that stops reading is closed instead of queueing without bound."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from switchboard_common.directory import User
from switchboard_gateway.domain.access import Principal
from switchboard_gateway.routes import socket
from switchboard_gateway.routes.socket import Session


class _Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.reading = asyncio.Event()
        self.reading.set()
        self.closed: int | None = None
        self.gone = asyncio.Event()

    async def send_text(self, text: str) -> None:
        await self.reading.wait()
        self.sent.append(text)

    async def close(self, code: int) -> None:
        self.closed = code

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()  # an idle client: says nothing until it goes
        return {"type": "websocket.disconnect"}


class _Turns:
    async def agency(self, who: object, listener: object) -> Any:
        async def leave() -> None:
            pass
        return leave


def _session(ws: _Socket, max_outbox: int = 100) -> Session:
    return Session(cast(Any, ws), Principal("acme", User(id="ana")), cast(Any, _Turns()), 1000,
                   max_outbox, cast(Any, None))


async def _others(wait_s: float = 0.01) -> set[asyncio.Task[Any]]:
    await asyncio.sleep(wait_s)
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def test_frames_leave_in_order_and_no_task_waits_on_an_idle_socket(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "_WRITER_LINGER_S", 0.05)
    ws = _Socket()
    session = _session(ws)
    reader = asyncio.create_task(session.run())
    assert await _others() == {reader}  # an open, idle socket: its reader and nothing else
    for i in range(3):
        session.send(f"a{i}")
    ws.reading.clear()  # a slow moment: what comes meanwhile queues behind
    await asyncio.sleep(0.01)
    for i in range(3):
        session.send(f"b{i}")
    ws.reading.set()
    assert len(await _others()) == 2  # written; the writer waits a moment for more
    session.send("b3")
    assert await _others(0.1) == {reader}  # idle for longer: the writer is gone again
    session.send("c0")
    await _others()
    assert ws.sent == ["a0", "a1", "a2", "b0", "b1", "b2", "b3", "c0"]
    await _others(0.1)
    ws.gone.set()
    await reader  # the session ends cleanly, with or without a writer


async def test_a_client_that_stops_reading_is_closed() -> None:
    ws = _Socket()
    ws.reading.clear()
    session = _session(ws, max_outbox=5)
    for i in range(10):
        session.send(f"f{i}")
    await asyncio.sleep(0.01)
    assert ws.closed == 1013
