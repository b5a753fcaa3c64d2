"""Bounds on REST request bodies, enforced before anything parses them (pure ASGI middleware,
so it runs ahead of FastAPI's body reading and validation).

- Size: a body is counted as it arrives; past `max_body_bytes` the rest is read and dropped
  (up to `_DRAIN_FACTOR` times the limit, so a client that is still sending gets its 413
  instead of a reset connection) without keeping any of it. A `Content-Length` beyond that is
  answered 413 at once, without reading anything. A 50 MB upload
  used to be parsed whole, +132 MB RSS, before its 422.
- Depth: a JSON body nested deeper than `max_depth` is answered 422 without being parsed
  (Python's JSON parser recurses once per level).

Accepted bodies are handed on to the application unchanged. WebSocket frames have their own
bounds (uvicorn's `ws_max_size`, then `domain.protocol`)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard_gateway.domain.bounds import too_deep

_DRAIN_FACTOR = 4


class BodyBounds:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_depth: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes * _DRAIN_FACTOR:
            await _reply(send, 413, f"request body over {self.max_body_bytes} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                chunks.clear()
                if not more or size > self.max_body_bytes * _DRAIN_FACTOR:
                    await _reply(send, 413, f"request body over {self.max_body_bytes} bytes")
                    return
                continue
            chunks.append(chunk)
            if not more:
                break
        body = b"".join(chunks)
        if too_deep(body, self.max_depth):
            await _reply(send, 422, f"body nests deeper than {self.max_depth} levels",
                         "too_deep")
            return
        await self.app(scope, _replay(body, receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect

    return replay


async def _reply(send: Send, status: int, detail: str, kind: str = "too_large") -> None:
    errors: list[dict[str, Any]] = [{"loc": ["body"], "msg": detail, "type": kind}]
    payload = json.dumps({"detail": detail, "errors": errors}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
