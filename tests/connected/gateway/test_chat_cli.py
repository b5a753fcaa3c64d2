"""`switchboard chat` against a real gateway: streams, retries, usage, reconnect + resume."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest

from switchboard_cli.chat import run_chat
from tests.connected.gateway.support import Backend, Gateway

pytestmark = pytest.mark.connected


async def test_chat_prints_stream_retry_and_usage(gateway: Gateway, backend: Backend,
                                                  org: str) -> None:
    out = io.StringIO()
    asked = asyncio.Event()

    async def lines() -> AsyncIterator[str]:
        yield "/client sarah"
        yield "What is next?"
        asked.set()

    chat = asyncio.create_task(run_chat(gateway.http.replace("http", "ws") + "/ws", "demo",
                                        org, "va1", lines=lines(), out=out))
    turn = await backend.next_turn()
    assert (turn.client_id, turn.text, turn.user_id) == ("sarah", "What is next?", "va1")
    await backend.delta(turn, 1, "Lun")
    await backend.retry(turn, 2)
    await backend.delta(turn, 3, "Lunch ")
    await backend.delta(turn, 4, "at noon.")
    await backend.done(turn, 5, "Lunch at noon.")
    assert await asyncio.wait_for(chat, 10) == 0
    text = out.getvalue()
    assert "[client is now sarah]" in text
    assert "> Lun\n[retrying, attempt 2: crash; the answer starts again]\nLunch at noon." in text
    assert "[fake-1 via fake · 3 in / 4 out tokens · end_turn]" in text


async def test_chat_reports_unreachable_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()

    async def lines() -> AsyncIterator[str]:
        yield "hi"

    monkeypatch.setattr("switchboard_cli.chat.RECONNECT_ATTEMPTS", 1)
    assert await run_chat("ws://127.0.0.1:9/ws", "c", lines=lines(), out=out) == 1
    assert "cannot reach" in out.getvalue()
