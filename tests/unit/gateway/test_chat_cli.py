"""The terminal client's pure parts: URL identity and how frames are rendered."""

from __future__ import annotations

from switchboard_cli.chat import render_frame, socket_url


def test_socket_url_adds_identity_and_keeps_query() -> None:
    assert socket_url("ws://h:1/ws", "acme", "va1") == "ws://h:1/ws?org=acme&user=va1"
    assert socket_url("ws://h/ws?x=1&org=old", "new", None) == "ws://h/ws?x=1&org=new"
    assert socket_url("ws://h/ws", None, None) == "ws://h/ws"


def test_render_frames() -> None:
    assert render_frame({"type": "delta", "seq": 1, "text": "Hi"}) == "Hi"
    assert "attempt 2" in render_frame({"type": "turn_retry", "seq": 3, "attempt": 2,
                                        "reason": "crash"})
    done = render_frame({"type": "turn_completed", "model": "claude-x", "provider": "anthropic",
                         "stop_reason": "end_turn",
                         "usage": {"input_tokens": 5, "output_tokens": 7}})
    assert "claude-x via anthropic" in done and "5 in / 7 out tokens" in done
    err = render_frame({"type": "error", "code": "provider_timeout", "message": "slow",
                        "retryable": True})
    assert "[error provider_timeout: slow (retryable)]" in err
    assert render_frame({"type": "turn_started"}) == ""
