"""A real turn end to end: WebSocket -> gateway -> context -> llm_stream (real anthropic SDK
against the protocol-level fake) -> token deltas back on the socket -> conversation stored."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import websockets

from switchboard_cli.stack import Stack
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.integration.conftest import (
    converse,
    frames_until_terminal,
    send_message,
    text_of,
    ws_url,
)

pytestmark = pytest.mark.integration


async def test_answer_streams_token_by_token_with_model_and_usage(stack: Stack) -> None:
    # Paced like a model: the tokens reach the socket as they come, not in one piece.
    frames = await converse(stack, "[[fake tokens=12 delay_ms=20]] What is on my calendar?")
    types = [f["type"] for f in frames]
    assert types[0] == "turn_started"
    assert types.count("delta") > 1
    done = frames[-1]
    assert done["type"] == "turn_completed"
    assert done["text"] == text_of(frames) and done["text"]
    assert done["provider"] == "anthropic" and done["model"]
    assert done["usage"]["output_tokens"] == 12 and len(done["text"].split()) == 12
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


async def test_conversation_history_reaches_the_next_prompt(
        stack: Stack, fake_anthropic: FakeAnthropic) -> None:
    client = f"c{uuid.uuid4().hex[:8]}"
    first = await converse(stack, "My flight is at 9.", client=client)
    await converse(stack, "When is my flight?", client=client)
    body = fake_anthropic.last_request
    contents = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
                for m in body["messages"]]
    assert contents[0] == "My flight is at 9."
    assert contents[1] == first[-1]["text"]
    assert contents[-1] == "When is my flight?"


async def test_same_idempotency_key_twice_produces_one_turn(
        stack: Stack, fake_anthropic: FakeAnthropic) -> None:
    key = uuid.uuid4().hex
    before = fake_anthropic.request_count
    async with websockets.connect(ws_url(stack)) as ws:
        await send_message(ws, "[[fake tokens=5]] once please", key=key)
        first = await frames_until_terminal(ws)
        await send_message(ws, "[[fake tokens=5]] once please", key=key)
        second = await frames_until_terminal(ws)
    assert first[0]["turn_id"] == second[0]["turn_id"]
    assert second[0]["duplicate"] is True
    assert second[-1]["text"] == first[-1]["text"]
    await asyncio.sleep(0.5)
    assert fake_anthropic.request_count - before == 1


async def test_llm_stream_killed_mid_answer_is_retried_with_explicit_reset(
        stack: Stack) -> None:
    """SIGKILL llm_stream while it streams; start it again. JetStream redelivers the model
    request; the client gets turn_retry, then the complete answer, and seqs never repeat."""
    prompt = "[[fake tokens=60 delay_ms=40]] Tell me a long story"
    reference = await converse(stack, prompt)

    killed = False

    async def kill_after_five(frame: dict, frames: list) -> None:  # type: ignore[type-arg]
        nonlocal killed
        if not killed and sum(f["type"] == "delta" for f in frames) == 5:
            killed = True
            # Not in a worker thread: children die with the thread that started them
            # (PR_SET_PDEATHSIG), and a pool thread may exit at any time.
            stack.kill_service("llm_stream")
            stack.start_service("llm_stream")

    started = time.monotonic()
    async with websockets.connect(ws_url(stack)) as ws:
        await send_message(ws, prompt)
        frames = await frames_until_terminal(ws, timeout=60, on_frame=kill_after_five)
    assert killed
    types = [f["type"] for f in frames]
    assert "turn_retry" in types, types
    retry_at = types.index("turn_retry")
    assert types[:retry_at].count("delta") >= 5
    assert frames[-1]["type"] == "turn_completed"
    assert text_of(frames) == frames[-1]["text"] == reference[-1]["text"]
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert time.monotonic() - started < 45


async def test_provider_failure_gives_typed_error_within_bounded_time(stack: Stack) -> None:
    started = time.monotonic()
    frames = await converse(stack, "[[fake status=500]] this will fail")
    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "provider_unavailable"
    assert time.monotonic() - started < 15

    frames = await converse(stack, "[[fake status=429]] this will be rate limited")
    assert frames[-1]["code"] == "provider_rate_limited"


async def test_bad_input_gets_error_frame_and_socket_keeps_serving(stack: Stack) -> None:
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send("{not json")
        assert json.loads(await ws.recv())["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "shout", "text": "x"}))
        assert json.loads(await ws.recv())["code"] == "unknown_type"
        await ws.send(json.dumps({"type": "user_message", "text": "no client"}))
        assert json.loads(await ws.recv())["code"] == "invalid_message"
        await ws.send(json.dumps({"type": "user_message", "client_id": "sarah",
                                  "idempotency_key": "k", "text": "x" * 100_000}))
        assert json.loads(await ws.recv())["code"] == "message_too_large"
        await send_message(ws, "[[fake tokens=3]] still there?")
        frames = await frames_until_terminal(ws)
        assert frames[-1]["type"] == "turn_completed"


def test_no_service_was_refused_anything_on_the_bus(stack: Stack) -> None:
    """Runs last in this module: everything above ran under each service's own NATS user."""
    assert stack.permission_violations() == []


async def test_socket_declines_compression(stack: Stack) -> None:
    # Browsers and this client offer permessage-deflate; the gateway declines it by default
    # (GATEWAY_WS_COMPRESSION): each socket's compressor cost ~31 KB (docs/performance.md).
    async with websockets.connect(ws_url(stack)) as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
