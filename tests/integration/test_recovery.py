"""Recovery from infrastructure faults on real processes: Valkey restarted mid-turn, NATS
restarted mid-stream. Each test has its own stack, since it breaks it."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
import redis.asyncio as redis
import websockets
from nats.js.errors import NotFoundError

from switchboard_cli.stack import Stack, start_stack
from switchboard_common.conversations import ConversationStore
from switchboard_common.permissions import ADMIN
from switchboard_common.streams import TURN_EVENTS
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.integration.conftest import (
    FAST_RECOVERY,
    frames_until_terminal,
    send_message,
    text_of,
    ws_url,
)
from tests.people import add_people

pytestmark = pytest.mark.integration

TURNS = 10


@pytest.fixture
async def stack(tmp_path: Path, fake_anthropic: FakeAnthropic) -> AsyncIterator[Stack]:
    running = start_stack(
        tmp_path / "data", well_known_ports=False,
        env={**FAST_RECOVERY, "ANTHROPIC_API_KEY": "sk-test-not-a-real-key",
             "ANTHROPIC_BASE_URL": fake_anthropic.base_url, "GATEWAY_TURN_DEADLINE_S": "60"})
    try:
        await asyncio.to_thread(running.wait_ready, 90)
        await add_people(running.store_url, "acme", ("va1",))
        yield running
    finally:
        await asyncio.to_thread(running.stop)


async def turn_events_declared(stack: Stack) -> None:
    """Until a service has declared SB_TURN_EVENTS again (asked as the admin user)."""
    assert stack.nats is not None and stack.secrets is not None
    nc = await nats.connect(stack.nats.url, user=ADMIN, password=stack.secrets.nats[ADMIN])
    try:
        while True:
            try:
                await nc.jetstream().stream_info(TURN_EVENTS.name)
                return
            except NotFoundError:
                await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def one_turn(stack: Stack, text: str, client: str) -> list[dict[str, Any]]:
    async with websockets.connect(ws_url(stack)) as ws:
        await send_message(ws, text, client=client)
        return await frames_until_terminal(ws, timeout=90)


def outcome(frames: list[dict[str, Any]]) -> str:
    last = frames[-1]
    return "completed" if last["type"] == "turn_completed" else str(last.get("code"))


async def test_valkey_restart_mid_turn_loses_no_turn(stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    turns = [asyncio.create_task(one_turn(
        stack, "[[fake tokens=30 delay_ms=100]] tell me a story", f"v{run}{i}"))
        for i in range(TURNS)]
    await asyncio.sleep(1.0)  # every turn is streaming; each stores its result at the end
    # Down longer than the Valkey client retries for (~2.5 s): JetStream redelivery with
    # backoff carries the rest.
    await asyncio.to_thread(stack.restart_valkey, 4.0)
    results = await asyncio.gather(*turns)
    assert [outcome(f) for f in results] == ["completed"] * TURNS
    for frames in results:
        assert text_of(frames) == frames[-1]["text"]
    # Right after the restart, new turns succeed too (no stale pooled connection fails).
    after = await asyncio.gather(*(one_turn(stack, "hello again", f"w{run}{i}")
                                   for i in range(TURNS)))
    assert [outcome(f) for f in after] == ["completed"] * TURNS


async def test_nats_restart_mid_stream_leaves_no_silent_gap(stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    turns = [asyncio.create_task(one_turn(
        stack, "[[fake tokens=60 delay_ms=100]] tell me a long story", f"n{run}{i}"))
        for i in range(5)]
    await asyncio.sleep(1.5)  # every turn is streaming
    # Freeze the gateway across the restart and a little after, so llm_stream is back on
    # NATS and streaming before the gateway has re-subscribed: deltas are published that its
    # live subscription never sees (what made clients jump from seq 18 to 61).
    gateway = stack.procs["gateway"]
    gateway.send_signal(signal.SIGSTOP)
    try:
        await asyncio.to_thread(stack.restart_nats, 2.0)
        await asyncio.sleep(1.5)
    finally:
        gateway.send_signal(signal.SIGCONT)
    results = await asyncio.gather(*turns)
    for frames in results:
        seqs = [f["seq"] for f in frames if f.get("seq")]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
        last = frames[-1]
        if last["type"] == "turn_completed":
            # Whatever was lost on the way, the client shows the whole answer.
            assert text_of(frames) == last["text"], [f.get("seq") for f in frames]
        else:  # a turn may fail, but visibly and retryably, never silently short
            assert last["type"] == "error" and last["retryable"], last
    assert sum(outcome(f) == "completed" for f in results) >= 1


async def test_after_a_nats_restart_a_dropped_socket_resumes_its_turn(stack: Stack) -> None:
    """SB_TURN_EVENTS lives in memory: a restarted NATS has lost it, and the services declare
    it again when they reconnect. Without it no turn could be resumed until a redeploy."""
    await asyncio.to_thread(stack.restart_nats, 0.5)
    async with asyncio.timeout(30):  # until the services are back on NATS
        while (await one_turn(stack, "are you back", "nr"))[-1]["type"] != "turn_completed":
            await asyncio.sleep(0.5)
        await turn_events_declared(stack)
    seen: list[dict[str, Any]] = []
    async with websockets.connect(ws_url(stack)) as ws:
        await send_message(ws, "[[fake tokens=40 delay_ms=50]] a story", client="nr")
        while len([f for f in seen if f["type"] == "delta"]) < 3:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    turn_id = seen[0]["turn_id"]
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"type": "resume", "turn_id": turn_id,
                                  "last_seq": seen[-1]["seq"]}))
        rest = await frames_until_terminal(ws, timeout=30, turn_id=turn_id)
    assert rest[-1]["type"] == "turn_completed", rest[-1]
    assert text_of(seen + rest) == rest[-1]["text"]
    assert [f["type"] for f in rest].count("turn_retry") == 0  # every event was kept


async def test_nats_back_without_its_store_serves_turns_again(stack: Stack) -> None:
    """A server without a persistent volume comes back empty: every service creates its
    streams and consumers again once reconnected, and turns are served again."""
    await asyncio.to_thread(stack.restart_nats, 0.5, wipe=True)
    async with asyncio.timeout(30):
        while (await one_turn(stack, "are you back", "nw"))[-1]["type"] != "turn_completed":
            await asyncio.sleep(0.5)
    assert stack.permission_violations() == []


@pytest.mark.parametrize("lost", [False, True], ids=["stored-late", "lost"])
async def test_a_retry_after_an_unanswered_publish_runs_the_turn_once(stack: Stack,
                                                                     lost: bool) -> None:
    """NATS frozen while a turn is sent: the gateway gets no ack in time and cannot know
    whether JetStream stored the request. The client's retry with the same key follows the
    turn to its end, once: whether the request was stored late (the server thawed) or never
    (the server died frozen, with the request unread)."""
    assert stack.nats is not None
    client, key = f"f{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    text = "[[fake tokens=5]] are you there"
    async with websockets.connect(ws_url(stack)) as ws:
        assert outcome(await one_turn(stack, "warm", client)) == "completed"
        stack.nats.proc.send_signal(signal.SIGSTOP)
        try:
            await send_message(ws, text, client=client, key=key)
            first = await frames_until_terminal(ws, timeout=20)
        finally:
            if lost:
                stack.nats.proc.kill()
                stack.nats.proc.wait()
                await asyncio.to_thread(stack.restart_nats, 0.1)
            else:
                stack.nats.proc.send_signal(signal.SIGCONT)
    assert (first[-1]["type"], first[-1]["code"], first[-1]["retryable"]) == (
        "error", "service_unavailable", True)
    async with asyncio.timeout(60):
        while True:  # the client retries, same key, until an answer (NATS coming back)
            async with websockets.connect(ws_url(stack)) as ws:
                await send_message(ws, text, client=client, key=key)
                again = await frames_until_terminal(ws, timeout=30)
            if outcome(again) == "completed":
                break
            await asyncio.sleep(0.5)
    assert again[0]["turn_id"] == first[0]["turn_id"]
    assert again[-1]["text"].startswith("Echo: are you there")
    conversations = ConversationStore(redis.Redis.from_url(stack.store_url))
    try:
        history = await conversations.messages("acme", "va1", client, "main")
    finally:
        await conversations.close()
    assert [m.content for m in history if m.role == "user"].count(text) == 1
