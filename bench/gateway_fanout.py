"""One gateway under a crowd: idle sockets held open while turns stream (issue 13).

The stack runs as in `bench/pipeline.py` (authentication, limits and OTLP export on), with the
fake provider pacing its answers like a model (`--tokens` deltas, `--delay-ms` apart). The
bench opens `--idle` sockets that never send anything, reads the gateway's RSS per idle
socket, then starts `--streams` turns at once on sockets of their own and measures, for every
delta, how late it reached its socket: the time a tap subscribed to `turns.events.>` on NATS
got it (the publish, give or take NATS's own delivery) to the time the WebSocket client got
the same (turn, seq). The streaming clients run in a process of their own, so parsing 100
streams does not delay the tap's clock readings; both read the same monotonic clock.
Prints markdown tables. Usage: python bench/gateway_fanout.py [--idle 1000] [--streams 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path

import nats
import psutil
import websockets
from nats.aio.msg import Msg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402
    CpuMeter,
    OtlpSink,
    PipelineUrls,
    pct,
    sign_in,
    stack_pids,
    start_fake,
    start_production_stack,
)
from switchboard_common.permissions import ADMIN  # noqa: E402

Arrivals = dict[tuple[str, int], float]
"""(turn id, seq) of a delta -> when it arrived (time.monotonic)."""


async def _stream(url: str, prompt: str, start: asyncio.Event, got: Arrivals) -> bool:
    """One turn; whether the deltas spelled out the whole answer."""
    text = ""
    async with websockets.connect(url, max_size=None) as ws:
        await start.wait()
        await ws.send(json.dumps({"type": "user_message", "client_id": f"f{uuid.uuid4().hex[:8]}",
                                  "text": prompt, "idempotency_key": uuid.uuid4().hex}))
        while True:
            raw = await ws.recv()
            now = time.monotonic()
            frame = json.loads(raw)
            if frame["type"] == "delta":
                got[(frame["turn_id"], frame["seq"])] = now
                text += frame["text"]
            elif frame["type"] == "turn_retry":
                text = ""
            elif frame["type"] in ("turn_completed", "error"):
                if frame["type"] == "error":
                    raise RuntimeError(f"turn failed: {frame}")
                return bool(text == frame["text"])


def streamers(urls: list[str], prompt: str, pipe: Connection) -> None:
    """The streaming clients' process: connect every socket, wait for the go, start every
    turn at once, send back when each delta arrived."""
    async def main() -> tuple[Arrivals, int]:
        got: Arrivals = {}
        start = asyncio.Event()
        tasks = [asyncio.create_task(_stream(url, prompt, start, got)) for url in urls]
        await asyncio.sleep(1.0)  # every socket open and authenticated
        pipe.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        start.set()
        whole = await asyncio.gather(*tasks)
        return got, sum(whole)

    pipe.send(asyncio.run(main()))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=1000, help="idle sockets held open")
    parser.add_argument("--streams", type=int, default=100, help="turns streaming at once")
    parser.add_argument("--tokens", type=int, default=100, help="deltas per answer")
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help="the fake model's pause between deltas (20 ms: 50 tokens/s)")
    args = parser.parse_args()

    fake, fake_url = start_fake()
    sink = OtlpSink()
    stack, _ = start_production_stack(fake_url, sink.endpoint)
    try:
        stack.wait_ready(120)
        assert stack.secrets is not None
        urls = PipelineUrls(stack.gateway_url, await sign_in(stack))
        gateway = psutil.Process(stack.procs["gateway"].pid)
        meter = CpuMeter(stack_pids(stack))
        rss0 = gateway.memory_info().rss
        idle = [await websockets.connect(await urls(), max_size=None) for _ in range(args.idle)]
        await asyncio.sleep(1.0)
        rss_idle = gateway.memory_info().rss

        tap: Arrivals = {}

        async def on_event(msg: Msg) -> None:
            now = time.monotonic()
            event = json.loads(msg.data)
            if event.get("type") == "delta":
                tap[(event["turn_id"], event["seq"])] = now

        nc = await nats.connect(stack.env["NATS_URL"], user=ADMIN,
                                password=stack.secrets.nats[ADMIN])
        await nc.subscribe("turns.events.>", cb=on_event)
        prompt = f"[[fake tokens={args.tokens} delay_ms={args.delay_ms:g}]] tell me"
        mine, theirs = multiprocessing.Pipe()
        child = multiprocessing.get_context("spawn").Process(
            target=streamers, args=([await urls() for _ in range(args.streams)], prompt, theirs))
        child.start()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, mine.recv)  # "ready"
        cpu0 = meter.read()
        started = time.monotonic()
        mine.send("go")
        got, whole = await loop.run_in_executor(None, mine.recv)
        wall = time.monotonic() - started
        cpu1 = meter.read()
        rss_streaming = gateway.memory_info().rss
        await asyncio.sleep(0.5)  # the tap's last deltas
        await nc.close()
        child.join()
        await asyncio.gather(*(ws.close() for ws in idle))
    finally:
        stack.stop()
        sink.close()
        fake.terminate()
        fake.wait()

    late = [(got[k] - tap[k]) * 1000 for k in got if k in tap]
    missing = len(got) - len(late)
    deltas = args.streams * args.tokens
    print(f"\n### One gateway: {args.idle} idle sockets + {args.streams} streaming turns "
          f"({args.tokens} deltas {args.delay_ms:g} ms apart)\n")
    print("| measure | value |\n|---|---|")
    per_idle = (rss_idle - rss0) / max(1, args.idle) / 1024
    print(f"| gateway RSS per idle socket | {per_idle:.1f} KB |")
    print(f"| gateway RSS growth while streaming | "
          f"{(rss_streaming - rss_idle) / 1024 / 1024:.1f} MB |")
    print(f"| answers whole (deltas spell the final text) | {whole} / {args.streams} |")
    # llm_stream sends pieces that reach it together as one delta, so a few frames fewer
    # than tokens is no loss; every frame published must reach its socket.
    print(f"| delta frames published / received / tokens | {len(tap)} / {len(got)} / {deltas} |")
    print(f"| lateness (WebSocket arrival - NATS publish) p50 | {statistics.median(late):.2f} ms |")
    print(f"| lateness p99 | {pct(late, 0.99):.2f} ms |")
    print(f"| lateness max | {max(late):.2f} ms |")
    print(f"| deltas later than 50 ms | {sum(x > 50 for x in late)} |")
    print(f"| deltas the tap missed | {missing} |")
    print(f"| streaming phase | {wall:.2f} s, {len(got) / wall:.0f} deltas/s |")
    print("\n### Server CPU during the streaming phase (ms per second of wall time)\n")
    print("| " + " | ".join(cpu1) + " |\n|" + "---|" * len(cpu1))
    print("| " + " | ".join(f"{(cpu1[n] - cpu0[n]) * 1000 / wall:.0f}" for n in cpu1) + " |")


if __name__ == "__main__":
    asyncio.run(main())
