"""The monolith baseline for bench/pipeline.py: one process that accepts the same WebSocket
`user_message` and streams the provider's answer straight back (anthropic SDK, no NATS, no
other services). Run: python bench/monolith.py --port P --anthropic-url URL [--aiohttp]"""

from __future__ import annotations

import argparse
import json

import anthropic
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect


def build(anthropic_url: str, aiohttp: bool = False) -> FastAPI:
    app = FastAPI()
    # The SDK's default httpx transport (the baseline), or its aiohttp one, as llm_stream
    # uses: the same transport on both sides of the comparison.
    client = anthropic.AsyncAnthropic(
        api_key="sk-bench", base_url=anthropic_url, max_retries=0,
        **({"http_client": anthropic.DefaultAioHttpClient()} if aiohttp else {}))

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        try:
            while True:
                msg = json.loads(await socket.receive_text())
                turn = msg["idempotency_key"]
                await socket.send_text(json.dumps({"type": "turn_started", "turn_id": turn}))
                seq = 0
                async with client.messages.stream(
                    model="bench", max_tokens=512,
                    messages=[{"role": "user", "content": msg["text"]}],
                ) as stream:
                    async for text in stream.text_stream:
                        seq += 1
                        await socket.send_text(json.dumps(
                            {"type": "delta", "turn_id": turn, "seq": seq, "text": text}))
                    final = await stream.get_final_message()
                await socket.send_text(json.dumps({
                    "type": "turn_completed", "turn_id": turn, "seq": seq + 1,
                    "model": final.model, "text": "".join(
                        b.text for b in final.content if b.type == "text")}))
        except WebSocketDisconnect:
            return

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--anthropic-url", required=True)
    parser.add_argument("--aiohttp", action="store_true",
                        help="the SDK over its aiohttp transport (as llm_stream), not httpx")
    args = parser.parse_args()
    # Same WebSocket settings as the gateway's default (no permessage-deflate).
    uvicorn.run(build(args.anthropic_url, args.aiohttp), host="127.0.0.1", port=args.port,
                log_level="warning", ws_per_message_deflate=False)
