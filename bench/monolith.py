"""The monolith baseline for bench/pipeline.py: one process that accepts the same WebSocket
`user_message` and streams the provider's answer straight back (anthropic SDK, no NATS, no
other services). Run: python bench/monolith.py --port P --anthropic-url URL [--aiohttp]

`socket_app` and `serve` are the socket loop and server every bench stand-in for the gateway
uses (bench/monolith_duties.py, bench/hop_floor.py's edge); `services_provider` is the model
call those stand-ins make."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import anthropic
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from switchboard_llm_stream.domain.provider import Provider

Turn = Callable[[WebSocket, dict[str, Any]], Awaitable[None]]


def socket_app(turn: Turn, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]
               | None = None) -> FastAPI:
    """An app whose `/ws` runs `turn` for each message, one at a time, until the socket
    closes."""
    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        try:
            while True:
                await turn(socket, json.loads(await socket.receive_text()))
        except WebSocketDisconnect:
            return

    return app


def serve(app: FastAPI, port: int) -> None:
    """On loopback, with the gateway's default WebSocket settings (no permessage-deflate)."""
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning",
                ws_per_message_deflate=False)


def services_provider(anthropic_url: str) -> Provider:
    """The model as llm_stream calls it (its own `select_provider` and defaults, on the
    Anthropic protocol), for the stand-ins that measure the services' model call rather than
    this baseline's (imported here: the baseline itself does not load llm_stream)."""
    from switchboard_llm_stream.main import select_provider
    from switchboard_llm_stream.settings import Settings

    return select_provider(Settings(provider="anthropic", anthropic_api_key="sk-bench",
                                    anthropic_base_url=anthropic_url, anthropic_model="bench"))


def build(anthropic_url: str, aiohttp: bool = False) -> FastAPI:
    # The SDK's default httpx transport (the baseline), or its aiohttp one, as llm_stream
    # uses: the same transport on both sides of the comparison.
    client = anthropic.AsyncAnthropic(
        api_key="sk-bench", base_url=anthropic_url, max_retries=0,
        http_client=anthropic.DefaultAioHttpClient() if aiohttp else None)

    async def turn(socket: WebSocket, msg: dict[str, Any]) -> None:
        key = msg["idempotency_key"]
        await socket.send_text(json.dumps({"type": "turn_started", "turn_id": key}))
        seq = 0
        async with client.messages.stream(
            model="bench", max_tokens=512,
            messages=[{"role": "user", "content": msg["text"]}],
        ) as stream:
            async for text in stream.text_stream:
                seq += 1
                await socket.send_text(json.dumps(
                    {"type": "delta", "turn_id": key, "seq": seq, "text": text}))
            final = await stream.get_final_message()
        await socket.send_text(json.dumps({
            "type": "turn_completed", "turn_id": key, "seq": seq + 1,
            "model": final.model, "text": "".join(
                b.text for b in final.content if b.type == "text")}))

    return socket_app(turn)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--anthropic-url", required=True)
    parser.add_argument("--aiohttp", action="store_true",
                        help="the SDK over its aiohttp transport (as llm_stream), not httpx")
    args = parser.parse_args()
    serve(build(args.anthropic_url, args.aiohttp), args.port)
