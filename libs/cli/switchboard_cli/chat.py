"""`switchboard chat`: a terminal client for the gateway's WebSocket protocol (docs/protocol.md).

Reads one message per line from stdin and prints the answer as it streams. On `turn_retry` it
prints a marker and starts the answer again; on completion it prints the model and token
usage. If the connection drops mid-answer it reconnects and resumes after the last `seq` it
printed (or re-sends the message under the same idempotency key if the turn had not started).
Lines starting with `/`: `/client NAME` switches client, `/quit` leaves (so does EOF/Ctrl-D).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from switchboard_cli.apikey import (
    add_credential_args,
    auth_headers,
    find_api_key,
    http_base,
    missing_key_message,
)

RECONNECT_ATTEMPTS = 8


def socket_url(url: str, org: str | None, user: str | None) -> str:
    """`url` with the dev identity (`org`, `user`) as query parameters."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: v for k, v in (("org", org), ("user", user)) if v})
    return urlunsplit(parts._replace(query=urlencode(query)))


async def stdin_lines() -> AsyncIterator[str]:
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line.rstrip("\n")


class _Turn:
    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self.turn_id: str | None = None
        self.last_seq = 0
        self.done = False


class Chat:
    def __init__(self, url: str, client_id: str, out: TextIO,
                 headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.client_id = client_id
        self.out = out
        self.ws: ClientConnection | None = None

    def _print(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    async def _connect(self) -> ClientConnection:
        delay = 0.25
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                self.ws = await websockets.connect(self.url, max_size=None,
                                                   additional_headers=self.headers)
                return self.ws
            except (OSError, websockets.InvalidHandshake) as exc:
                if attempt == RECONNECT_ATTEMPTS - 1:
                    raise ConnectionError(f"cannot reach {self.url}: {exc}") from exc
                self._print(f"[connecting to {self.url} failed, retrying in {delay:.1f}s]\n")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)
        raise AssertionError("unreachable")

    async def ask(self, text: str) -> None:
        turn = _Turn({"type": "user_message", "client_id": self.client_id, "text": text,
                      "idempotency_key": uuid.uuid4().hex})
        outgoing: dict[str, Any] = turn.message
        while not turn.done:
            try:
                ws = self.ws or await self._connect()
                await ws.send(json.dumps(outgoing))
                await self._follow(ws, turn)
            except websockets.ConnectionClosed:
                self._print("\n[connection lost, reconnecting]\n")
                self.ws = None
                # Same key again if the turn never started (the gateway dedupes it),
                # otherwise pick up after the last event printed.
                outgoing = ({"type": "resume", "turn_id": turn.turn_id,
                             "last_seq": turn.last_seq} if turn.turn_id else turn.message)

    async def _follow(self, ws: ClientConnection, turn: _Turn) -> None:
        while True:
            frame = json.loads(await ws.recv())
            kind = frame.get("type")
            if kind == "turn_started":
                if frame.get("idempotency_key") == turn.message["idempotency_key"]:
                    turn.turn_id = frame["turn_id"]
                continue
            if turn.turn_id is None and kind == "error" and frame.get("idempotency_key") in (
                    None, turn.message["idempotency_key"]):
                self._print(render_error(frame) + "\n")  # refused before it started
                turn.done = True
                return
            if frame.get("turn_id") != turn.turn_id:
                continue
            seq = frame.get("seq", 0)
            if seq and seq <= turn.last_seq:
                continue  # already printed (a duplicate after resume)
            turn.last_seq = max(turn.last_seq, seq)
            self._print(render_frame(frame))
            if kind in ("turn_completed", "error"):
                turn.done = True
                return

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def render_error(frame: dict[str, Any]) -> str:
    hint = " (retryable)" if frame.get("retryable") else ""
    return f"[error {frame.get('code')}: {frame.get('message')}{hint}]"


# Escape sequences (ESC, CSI, OSC 8 hyperlinks that hide a link's real target, OSC 52 clipboard
# writes) and other control characters in an answer are shown, never interpreted.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f,
                                          *range(0x80, 0xa0))}


def plain(text: str) -> str:
    """Model or server text made safe for a terminal: control characters made visible."""
    return text.translate(_CONTROLS)


def render_frame(frame: dict[str, Any]) -> str:
    """What the terminal shows for one turn frame."""
    return plain(_render(frame))


def _render(frame: dict[str, Any]) -> str:
    kind = frame.get("type")
    if kind == "delta":
        return str(frame.get("text", ""))
    if kind == "turn_retry":
        return (f"\n[retrying, attempt {frame.get('attempt')}: {frame.get('reason')}; "
                "the answer starts again]\n")
    if kind == "turn_completed":
        usage = frame.get("usage") or {}
        return (f"\n[{frame.get('model')} via {frame.get('provider')} · "
                f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens"
                f" · {frame.get('stop_reason')}]\n")
    if kind == "error":
        return "\n" + render_error(frame) + "\n"
    if kind == "action_pending":
        return (f"\n[approval needed: {frame.get('tool')} (confidence "
                f"{frame.get('confidence')}), action {frame.get('action_id')}: "
                "POST /v1/actions/<id>/decision]\n")
    if kind == "action_result":
        return f"\n[{frame.get('tool')}: {frame.get('status')} - {frame.get('message')}]\n"
    return ""


async def whoami(url: str, headers: dict[str, str]) -> dict[str, Any] | str:
    """The gateway's view of our credential (`GET /v1/auth/me`), or why there is none: a
    refused key is reported once and clearly instead of as a socket closing."""
    try:
        async with httpx.AsyncClient(base_url=http_base(url), headers=headers, timeout=10) as http:
            response = await http.get("/v1/auth/me")
    except httpx.HTTPError as exc:
        return f"cannot reach {url}: {exc}"
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        return f"the gateway refused the credential ({response.status_code}): {detail}"
    body: dict[str, Any] = response.json()
    return body


async def run_chat(url: str, client_id: str, org: str | None = None, user: str | None = None,
                   *, api_key: str | None = None, lines: AsyncIterator[str] | None = None,
                   out: TextIO | None = None) -> int:
    """Chat until EOF or `/quit`. Returns a process exit code."""
    out = out or sys.stdout
    headers = auth_headers(api_key, org, user)
    me = await whoami(url, headers)
    if isinstance(me, str):
        out.write(me + "\n")
        return 1
    chat = Chat(url if api_key else socket_url(url, org, user), client_id, out,
                headers if api_key else None)
    try:
        await chat._connect()
    except ConnectionError as exc:
        out.write(f"{exc}\n")
        return 1
    out.write(f"Connected to {url} as {me['org']}/{me['user']}, client {client_id}. "
              "Type a message; /client NAME switches client, /quit leaves.\n")
    try:
        async for line in lines or stdin_lines():
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text.startswith("/client "):
                chat.client_id = text.split(maxsplit=1)[1]
                out.write(f"[client is now {chat.client_id}]\n")
                continue
            out.write("> ")
            out.flush()
            await chat.ask(text)
    except ConnectionError as exc:
        out.write(f"\n{exc}\n")
        return 1
    finally:
        await chat.close()
    return 0


def run_chat_cli(url: str, *, client_id: str, org: str | None = None, user: str | None = None,
                 api_key: str | None = None) -> int:
    """Blocking entry for `switchboard chat` (see __main__.py)."""
    key = None if org or user else find_api_key(api_key)
    if key is None and not (org and user):
        print(missing_key_message(), file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_chat(url, client_id, org, user, api_key=key))
    return 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard chat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--client", default="demo-client", help="the client (executive) id")
    add_credential_args(parser)
    args = parser.parse_args(argv)
    return run_chat_cli(args.url, client_id=args.client, org=args.org, user=args.user,
                        api_key=args.api_key)


if __name__ == "__main__":
    sys.exit(main())
