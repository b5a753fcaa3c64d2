"""The WebSocket protocol against a real NATS + Valkey, the back end played by the test."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import websockets

from switchboard_common.turns import TurnDone
from tests.connected.gateway.support import (
    Backend,
    Gateway,
    GatewayFactory,
    recv_json,
    user_message,
)

pytestmark = pytest.mark.connected


async def test_turn_streams_raw_events_in_order(gateway: Gateway, backend: Backend,
                                                org: str) -> None:
    async with websockets.connect(gateway.ws(org)) as ws:
        await ws.send(user_message("What is on my calendar?", key="key-1",
                                   conversation_id="conv1"))
        started = await recv_json(ws)
        turn = await backend.next_turn()
        assert started == {"type": "turn_started", "v": 1, "org_id": org,
                           "turn_id": turn.turn_id, "client_id": "sarah",
                           "conversation_id": "conv1", "idempotency_key": "key-1",
                           "duplicate": False}
        assert (turn.org_id, turn.user_id, turn.client_id) == (org, "va1", "sarah")
        assert turn.text == "What is on my calendar?" and turn.idempotency_key == "key-1"
        remaining = (turn.deadline_at - turn.created_at).total_seconds()
        assert abs(remaining - gateway.settings.turn_deadline_s) < 2

        sent = [await backend.delta(turn, 1, "Two "), await backend.delta(turn, 2, "meetings."),
                await backend.done(turn, 3, "Two meetings.")]
        received = [await ws.recv() for _ in sent]
        # Forwarded byte for byte: the gateway does not re-encode events.
        assert [r.encode() if isinstance(r, str) else r for r in received] == sent
        assert TurnDone.model_validate_json(received[-1]).model == "fake-1"


async def test_concurrent_turns_on_one_socket(gateway: Gateway, backend: Backend,
                                              org: str) -> None:
    async with websockets.connect(gateway.ws(org)) as ws:
        await ws.send(user_message("one", key="a"))
        await ws.send(user_message("two", key="b"))
        first, second = await backend.next_turn(), await backend.next_turn()
        await backend.delta(second, 1, "B")
        await backend.delta(first, 1, "A")
        await backend.done(second, 2, "B")
        await backend.done(first, 2, "A")
        frames = [await recv_json(ws) for _ in range(6)]
    by_turn: dict[str, list[str]] = {}
    for f in frames:
        by_turn.setdefault(f["turn_id"], []).append(f["type"])
    assert by_turn == {first.turn_id: ["turn_started", "delta", "turn_completed"],
                       second.turn_id: ["turn_started", "delta", "turn_completed"]}


async def test_bad_input_gets_error_frames_and_socket_stays_open(
        gateway: Gateway, backend: Backend, org: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = "my-secret-payload"
    cases = [
        ("{not json " + secret, "invalid_json", None),
        (json.dumps({"type": "shout", "text": secret}), "unknown_type", None),
        (json.dumps({"text": secret}), "invalid_message", "type"),
        (json.dumps({"type": "user_message", "text": secret, "idempotency_key": "k"}),
         "invalid_message", "client_id"),
        (user_message(secret, client="not.an.id"), "invalid_message", "client_id"),
        (user_message(secret, key="has space"), "invalid_message", "idempotency_key"),
        (json.dumps({"type": "resume", "turn_id": "t1", "last_seq": -1}), "invalid_message",
         "last_seq"),
        (json.dumps([secret]), "invalid_message", None),
        (user_message("é" * 9000), "message_too_large", None),  # 18,000 bytes of text
        ("x" * 100_000, "message_too_large", None),
    ]
    caplog.set_level(logging.WARNING)
    async with websockets.connect(gateway.ws(org)) as ws:
        for raw, code, field in cases:
            caplog.clear()
            await ws.send(raw)
            frame = await recv_json(ws)
            assert frame["type"] == "error" and frame["code"] == code, (raw[:40], frame)
            assert frame["turn_id"] is None and frame["retryable"] is False
            assert secret not in frame["message"]
            if field:
                assert field in frame["message"]
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert secret not in warnings[0].getMessage()
        await ws.send(b'{"type": "user_message"}')  # binary frames are read as UTF-8 JSON
        assert (await recv_json(ws))["code"] == "invalid_message"

        await ws.send(user_message("still there?"))
        assert (await recv_json(ws))["type"] == "turn_started"
        turn = await backend.next_turn()
        await backend.done(turn, 1, "yes")
        assert (await recv_json(ws))["type"] == "turn_completed"


async def test_same_key_twice_is_one_turn_and_duplicates_replay(
        gateway: Gateway, backend: Backend, org: str) -> None:
    async with websockets.connect(gateway.ws(org)) as ws:
        await ws.send(user_message("once", key="dup"))
        started = await recv_json(ws)
        turn = await backend.next_turn()
        await backend.delta(turn, 1, "par")
        assert (await recv_json(ws))["seq"] == 1
        # The same message again on the same socket while it streams: acknowledged only.
        await ws.send(user_message("once", key="dup"))
        again = await recv_json(ws)
        assert again["type"] == "turn_started" and again["duplicate"] is True
        assert again["turn_id"] == started["turn_id"]

        # ...and from another socket (a client that reconnected and re-sent): it replays.
        async with websockets.connect(gateway.ws(org)) as other:
            await other.send(user_message("once", key="dup"))
            dup = await recv_json(other)
            assert dup["duplicate"] is True and dup["turn_id"] == turn.turn_id
            assert (await recv_json(other))["text"] == "par"
            await backend.delta(turn, 2, "tial")
            await backend.done(turn, 3, "partial")
            assert [(await recv_json(other))["seq"] for _ in range(2)] == [2, 3]
        assert [(await recv_json(ws))["seq"] for _ in range(2)] == [2, 3]
    assert await backend.no_more_turns()

    # Another user's identical key is another turn (on a client of their own: va1's
    # auto-provisioned "sarah" is not assigned to va2).
    async with websockets.connect(gateway.ws(org, user="va2")) as ws:
        await ws.send(user_message("once", key="dup", client="john"))
        assert (await recv_json(ws))["duplicate"] is False
    assert (await backend.next_turn()).user_id == "va2"


async def test_deadline_gives_turn_timeout_and_stops_forwarding(
        gateway_factory: object, nats_url: str, org: str) -> None:
    async with gateway_factory(turn_deadline_s=0.6) as gw:  # type: ignore[operator]
        import nats

        nc = await nats.connect(nats_url)
        backend = Backend(nc, org)
        await backend.start()
        async with websockets.connect(gw.ws(org)) as ws:
            await ws.send(user_message("anyone?"))
            started = await recv_json(ws)
            turn = await backend.next_turn()
            await backend.delta(turn, 1, "thinking")
            assert (await recv_json(ws))["type"] == "delta"
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            frame = await recv_json(ws, timeout=3)
            assert frame["code"] == "turn_timeout" and frame["turn_id"] == started["turn_id"]
            assert frame["retryable"] is True and frame["seq"] == 2
            assert loop.time() - t0 < 1.5
            await backend.delta(turn, 2, "late")
            with pytest.raises(TimeoutError):
                await recv_json(ws, timeout=0.3)
        await nc.close()


async def test_resume_replays_after_last_seq_then_streams_live(
        gateway: Gateway, backend: Backend, org: str) -> None:
    async with websockets.connect(gateway.ws(org)) as ws:
        await ws.send(user_message("long answer please", key="r1"))
        turn_id = (await recv_json(ws))["turn_id"]
        turn = await backend.next_turn()
        await backend.retry(turn, 1)
        for seq in (2, 3, 4):
            await backend.delta(turn, seq, f"t{seq} ")
        assert [(await recv_json(ws))["seq"] for _ in range(4)] == [1, 2, 3, 4]
    for seq in (5, 6):  # while the client is away
        await backend.delta(turn, seq, f"t{seq} ")

    async with websockets.connect(gateway.ws(org)) as ws:
        await ws.send(json.dumps({"type": "resume", "turn_id": turn_id, "last_seq": 3}))
        replayed = [await recv_json(ws) for _ in range(3)]
        assert [f["seq"] for f in replayed] == [4, 5, 6]
        assert replayed[0]["text"] == "t4 "
        await backend.delta(turn, 7, "t7")
        await backend.done(turn, 8, "t2 t3 t4 t5 t6 t7")
        assert [(await recv_json(ws))["type"] for _ in range(2)] == ["delta", "turn_completed"]

        # A finished turn resumed from before its end replays up to the terminal event.
        await ws.send(json.dumps({"type": "resume", "turn_id": turn_id, "last_seq": 6}))
        assert [(await recv_json(ws))["seq"] for _ in range(2)] == [7, 8]
        # Resumed after the terminal event: nothing to send, and nothing hangs.
        await ws.send(json.dumps({"type": "resume", "turn_id": turn_id, "last_seq": 8}))
        with pytest.raises(TimeoutError):
            await recv_json(ws, timeout=0.3)


async def test_resume_only_for_the_turns_owner(gateway: Gateway, backend: Backend,
                                               org: str) -> None:
    async with websockets.connect(gateway.ws(org)) as ws:
        await ws.send(user_message("mine"))
        turn_id = (await recv_json(ws))["turn_id"]
    for url in (gateway.ws(org, user="intruder"), gateway.ws("otherorg", user="va1")):
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "resume", "turn_id": turn_id, "last_seq": 0}))
            frame = await recv_json(ws)
            assert (frame["code"], frame["turn_id"]) == ("unknown_turn", turn_id)
    async with websockets.connect(gateway.ws(org)) as ws:
        await ws.send(json.dumps({"type": "resume", "turn_id": "nosuchturn", "last_seq": 0}))
        assert (await recv_json(ws))["code"] == "unknown_turn"


async def test_invalid_identity_is_refused_with_a_frame(gateway: Gateway) -> None:
    async with websockets.connect(gateway.http.replace("http", "ws") + "/ws?org=a.b") as ws:
        frame = await recv_json(ws)
        assert frame["code"] == "unauthorized" and "org" in frame["message"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_socket_closed_mid_publish_releases_its_relay(
        gateway_factory: GatewayFactory, org: str) -> None:
    """The client leaves right after turn_started (while the TurnRequest is being published):
    the relay must stop at once, not wait for the turn's deadline (the gateway then shuts
    down well inside its 2 s grace period)."""
    loop = asyncio.get_running_loop()
    async with gateway_factory() as gw:
        for key in ("a", "b", "c"):
            async with websockets.connect(gw.ws(org)) as ws:
                await ws.send(user_message("bye", key=key))
                assert (await recv_json(ws))["type"] == "turn_started"
        await asyncio.sleep(0.1)
        t0 = loop.time()
    assert loop.time() - t0 < 1.0
