"""A local server that speaks Anthropic's Messages API, so the real `anthropic` SDK and our
parsing and error mapping are exercised without a paid model or the network.

    with FakeAnthropic() as srv:            # background thread, free port on 127.0.0.1
        AsyncAnthropic(api_key="sk-test", base_url=srv.base_url, max_retries=0)
        srv.request_count, srv.last_request  # what the SDK sent

    python -m tests.fakes.fake_anthropic --port 8123

`POST /v1/messages` with `"stream": true` answers `text/event-stream` with message_start,
content_block_start, ping, content_block_delta (text_delta) xN, content_block_stop,
message_delta (stop_reason, usage), message_stop; without `stream` it answers one Message.

The answer is deterministic: the words of the last user message after "Echo:", one text delta
per word. A directive anywhere in the last user message scripts the response:

    [[fake tokens=40 delay_ms=20]]             exactly 40 deltas, 20 ms apart
    [[fake tokens=200 each]]                   200 deltas, each written (and drained) on its
                                               own, as the API sends them, without waiting
    [[fake status=429]]                        HTTP error with Anthropic's JSON error body
                                               (400 401 403 404 413 429 500 503 529 ...)
    [[fake error_event=overloaded_error after=3]]  3 deltas, then an SSE `error` event
    [[fake hang]]                              accept the request, never answer
    [[fake hang_after=5]]                      5 deltas, then stall (connection kept open)
    [[fake status=529 times=2]]                the directive applies to the first 2 requests
                                               with this exact last message, then the
                                               normal answer (for retry-then-success tests)
    [[fake script=NAME]]                       tool use: answer with the scripted responses
                                               registered by `srv.script(NAME, steps)`
    [[fake script_b64=BASE64]]                 the same, steps inline (base64 of their JSON),
                                               for a fake running in another process
    [[fake obey]]                              the worst-case model of the injection suite:
                                               obeys every instruction it finds in its
                                               context (tests/fakes/obedient.py);
                                               `fetch=memory_search|calendar_list` calls that
                                               tool first

A script is a list of responses, one per model call of the turn: the call's index is the number
of assistant messages after the user message holding the directive (the tool-use loop adds one
per iteration). A response is a list of blocks, `{"text": "..."}` (streamed word by word) or
`{"tool": NAME, "input": {...}}` (a `tool_use` block whose input arrives as
`input_json_delta` pieces); with a tool block the stop reason is `tool_use`. Past the end of the
script the normal echo answer follows (`end_turn`), unless `repeat_last=True` was registered.

Usage is counted in words: input = words of system + messages, output = deltas. A system block
marked `cache_control` reports its words as `cache_creation_input_tokens` the first time that
prefix is seen and as `cache_read_input_tokens` afterwards, like prompt caching.

The HTTP layer is a deliberately small HTTP/1.1 server on asyncio streams (keep-alive, chunked
responses): it answers many concurrent streams on one core without a framework's overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from tests.fakes import obedient

_DIRECTIVE = re.compile(r"\[\[fake([^\]]*)\]\]")

_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 502: "api_error", 503: "api_error", 504: "api_error",
    529: "overloaded_error",
}
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 413: "Payload Too Large", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout", 529: "Overloaded"}


@dataclass
class Script:
    """What one request asked the fake to do (parsed from its directive)."""

    tokens: int | None = None
    delay_ms: float = 0.0
    each: bool = False
    status: int | None = None
    error_event: str | None = None
    after: int = 0
    hang: bool = False
    hang_after: int | None = None
    times: int | None = None
    script: str | None = None
    script_b64: str | None = None
    obey: bool = False
    fetch: str | None = None


def parse_directive(text: str) -> tuple[Script, str]:
    """The script in `text` and the text without the directive."""
    script = Script()
    match = _DIRECTIVE.search(text)
    if not match:
        return script, text
    for part in match.group(1).split():
        key, _, value = part.partition("=")
        if key == "hang":
            script.hang = True
        elif key == "obey":
            script.obey = True
        elif key == "each":
            script.each = True
        elif key == "fetch":
            script.fetch = value
        elif key in ("tokens", "status", "after", "hang_after", "times"):
            setattr(script, key, int(value))
        elif key == "delay_ms":
            script.delay_ms = float(value)
        elif key in ("error_event", "script", "script_b64"):
            setattr(script, key, value)
    return script, (text[:match.start()] + text[match.end():]).strip()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if isinstance(b, dict))


def answer_pieces(prompt: str, tokens: int | None) -> list[str]:
    """Deterministic answer: 'Echo:' and the prompt's words, cycled to `tokens` pieces."""
    words = ["Echo:", *(prompt.split() or ["nothing"])]
    count = len(words) if tokens is None else tokens
    return [(" " if i else "") + words[i % len(words)] for i in range(count)]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class FakeAnthropic:
    """The fake server. Use as a context manager (background thread) or `serve_forever`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.request_count = 0
        self.requests: deque[dict[str, Any]] = deque(maxlen=100)
        self._seen_prefixes: set[str] = set()
        self._times_used: dict[str, int] = {}
        self._scripts: dict[str, tuple[list[list[dict[str, Any]]], bool]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    def script(self, name: str, steps: list[list[dict[str, Any]]], *,
               repeat_last: bool = False) -> str:
        """Register a tool-use script; returns the directive that selects it."""
        self._scripts[name] = (steps, repeat_last)
        return f"[[fake script={name}]]"

    # ---- lifecycle ----
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def last_request(self) -> dict[str, Any]:
        return self.requests[-1]

    async def start_async(self) -> None:
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        await self.start_async()
        assert self._stopped is not None
        await self._stopped.wait()
        await self._close_async()

    async def _close_async(self) -> None:
        if self._server is not None:
            self._server.close()
            # Idle keep-alive and hanging connections end with EOF, so their handlers return.
            for writer in list(self._writers):
                writer.close()
            if self._handlers:  # they see EOF and return
                await asyncio.wait(self._handlers, timeout=2)

    def __enter__(self) -> FakeAnthropic:
        ready = threading.Event()

        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            await self.start_async()
            ready.set()
            assert self._stopped is not None
            await self._stopped.wait()
            await self._close_async()

        self._thread = threading.Thread(target=lambda: asyncio.run(run()),
                                        name="fake-anthropic", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Anthropic server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    # ---- HTTP/1.1 ----
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "POST" and path.split("?")[0] == "/v1/messages":
                    keep = await self._messages(json.loads(body or b"{}"), reader, writer)
                else:
                    self._json(writer, 404, _error_body(404, f"{method} {path} not found"))
                    keep = True
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Server shutdown: this is the connection task's outermost frame, nobody awaits it.
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _json(self, writer: asyncio.StreamWriter, status: int, body: dict[str, Any],
              extra: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        head = self._head(status, {"content-type": "application/json",
                                   "content-length": str(len(payload)), **(extra or {})})
        writer.write(head + payload)

    @staticmethod
    def _head(status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
                 f"request-id: req_fake_{uuid.uuid4().hex[:16]}", *(
                     f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    # ---- Messages API ----
    def _script_for(self, last_user: str) -> tuple[Script, str]:
        script, prompt = parse_directive(last_user)
        if script.times is not None:
            used = self._times_used.get(last_user, 0)
            self._times_used[last_user] = used + 1
            if used >= script.times:
                return Script(tokens=script.tokens, delay_ms=script.delay_ms,
                              each=script.each), prompt
        return script, prompt

    def _usage_in(self, body: dict[str, Any]) -> dict[str, int]:
        system = body.get("system") or ""
        cached = ""
        if isinstance(system, list):
            cached = " ".join(b.get("text", "") for b in system if b.get("cache_control"))
            system = " ".join(b.get("text", "") for b in system)
        words = len(str(system).split()) + sum(
            len(_text_of(m.get("content", "")).split()) for m in body.get("messages", []))
        cache_words = len(cached.split())
        usage = {"input_tokens": words - cache_words, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        if cache_words:
            hit = cached in self._seen_prefixes
            self._seen_prefixes.add(cached)
            usage["cache_read_input_tokens" if hit else "cache_creation_input_tokens"] = (
                cache_words)
        return usage

    async def _messages(self, body: dict[str, Any], reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        self.request_count += 1
        self.requests.append(body)
        anchor, step = _anchor(body.get("messages", []))
        script, prompt = self._script_for(anchor)
        scripted = (obedient.respond(body, step, script.fetch, prompt) if script.obey
                    else self._scripted(script, step))
        if scripted is not None:
            await self._stream_blocks(writer, scripted, self._usage_in(body),
                                      str(body.get("model", "fake-model")))
            return True
        if script.hang:
            await reader.read()  # until the client gives up and closes
            return False
        if script.status is not None and script.status != 200:
            extra = {"retry-after": "1"} if script.status in (429, 529) else {}
            self._json(writer, script.status, _error_body(script.status, "scripted failure"),
                       extra)
            return True
        model = str(body.get("model", "fake-model"))
        pieces = answer_pieces(prompt, script.tokens)
        usage = self._usage_in(body)
        msg_id = f"msg_fake_{uuid.uuid4().hex[:20]}"
        if not body.get("stream"):
            self._json(writer, 200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": "".join(pieces)}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {**usage, "output_tokens": len(pieces)}})
            return True
        await self._stream(writer, reader, script, pieces, usage, model, msg_id)
        return script.error_event is None and script.hang_after is None

    def _scripted(self, script: Script, step: int) -> list[dict[str, Any]] | None:
        if script.script_b64:
            steps, repeat = json.loads(base64.b64decode(script.script_b64)), False
        elif script.script:
            steps, repeat = self._scripts[script.script]
        else:
            return None
        if step < len(steps):
            return list(steps[step])
        if repeat and steps:
            return list(steps[-1])
        return [{"text": "Done."}]

    async def _stream_blocks(self, writer: asyncio.StreamWriter, blocks: list[dict[str, Any]],
                             usage: dict[str, int], model: str) -> None:
        out = [_sse("message_start", {"type": "message_start", "message": {
            "id": f"msg_fake_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1}}})]
        output = 0
        for index, block in enumerate(blocks):
            if "tool" in block:
                call_id = block.get("id") or f"toolu_{uuid.uuid4().hex[:20]}"
                raw = json.dumps(block.get("input", {}))
                out.append(_sse("content_block_start", {
                    "type": "content_block_start", "index": index, "content_block": {
                        "type": "tool_use", "id": call_id, "name": block["tool"], "input": {}}}))
                for start in range(0, len(raw), 16):  # partial JSON, as the API sends it
                    out.append(_sse("content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta",
                                  "partial_json": raw[start:start + 16]}}))
                output += 10 + len(raw.split())
            else:
                words = re.findall(r"\s*\S+", str(block.get("text", "")))  # spaces kept
                out.append(_sse("content_block_start", {
                    "type": "content_block_start", "index": index,
                    "content_block": {"type": "text", "text": ""}}))
                for word in words:
                    out.append(_sse("content_block_delta", {
                        "type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": word}}))
                output += len(words)
            out.append(_sse("content_block_stop", {"type": "content_block_stop",
                                                   "index": index}))
        stop = "tool_use" if any("tool" in b for b in blocks) else "end_turn"
        out += [
            _sse("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": stop, "stop_sequence": None},
                                   "usage": {"output_tokens": output}}),
            _sse("message_stop", {"type": "message_stop"}),
        ]
        writer.write(self._head(200, {"content-type": "text/event-stream",
                                      "cache-control": "no-cache",
                                      "transfer-encoding": "chunked"}))
        writer.write(_chunk(b"".join(out)) + b"0\r\n\r\n")

    async def _stream(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader,
                      script: Script, pieces: list[str], usage: dict[str, int], model: str,
                      msg_id: str) -> None:
        writer.write(self._head(200, {"content-type": "text/event-stream",
                                      "cache-control": "no-cache",
                                      "transfer-encoding": "chunked"}))
        out = [
            _sse("message_start", {"type": "message_start", "message": {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1}}}),
            _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}}),
            _sse("ping", {"type": "ping"}),
        ]
        delay = script.delay_ms / 1000
        error_at = None if script.error_event is None else min(script.after, len(pieces))
        for i, piece in enumerate([*pieces, ""]):
            if i == error_at:
                out.append(_sse("error", {"type": "error", "error": {
                    "type": script.error_event, "message": "scripted stream error"}}))
                writer.write(_chunk(b"".join(out)) + b"0\r\n\r\n")
                return
            if i == len(pieces):
                break
            if script.hang_after is not None and i == script.hang_after:
                writer.write(_chunk(b"".join(out)))
                await writer.drain()
                await reader.read()
                return
            out.append(_sse("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}}))
            if delay or script.each:
                writer.write(_chunk(b"".join(out)))
                out.clear()
                await writer.drain()
                if delay:
                    await asyncio.sleep(delay)
        out += [
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                   "usage": {"output_tokens": len(pieces)}}),
            _sse("message_stop", {"type": "message_stop"}),
        ]
        # Instant answers go out in one write: the benchmark measures our relay, not this.
        writer.write(_chunk(b"".join(out)) + b"0\r\n\r\n")


def _anchor(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """The text of the last user message that has text (tool_result-only messages have none)
    and how many assistant messages follow it: which model call of the turn this is."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.get("role") == "user" and _text_of(m.get("content", "")).strip():
            step = sum(1 for later in messages[i + 1:] if later.get("role") == "assistant")
            return _text_of(m["content"]), step
    return "", 0


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error",
            "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args()
    server = FakeAnthropic(args.host, args.port)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve_forever())


if __name__ == "__main__":
    main()
