"""Pipeline benchmark: what the microservices cost on top of the model.

With a local Anthropic-protocol server answering instantly, send turns over the WebSocket and
record, for concurrency 1 and 20:
  (a) time from sending `user_message` to the first `delta` through the full pipeline
      (gateway -> JetStream -> context -> JetStream -> llm_stream -> core NATS -> gateway);
  (b) the same through the monolith baseline (one process calling the provider directly);
  (c) relay throughput: aggregate streamed tokens/s and per-token cost with long answers.
Prints a markdown table. Usage: python bench/pipeline.py [--turns 500] [--tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_cli.embedded import free_port  # noqa: E402
from switchboard_cli.stack import SERVICES, start_stack  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def worker(url: str, turns: int, prompt: str, first: list[float], totals: list[float],
                 tokens: list[int]) -> None:
    # One client per worker: turns of one conversation run one at a time by design.
    client = f"bench{uuid.uuid4().hex[:8]}"
    async with websockets.connect(url, max_size=None) as ws:
        for _ in range(turns):
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "user_message", "client_id": client,
                                      "text": prompt, "idempotency_key": uuid.uuid4().hex}))
            got_first = False
            count = 0
            while True:
                frame = json.loads(await ws.recv())
                kind = frame["type"]
                if kind == "delta":
                    count += 1
                    if not got_first:
                        first.append((time.perf_counter() - sent) * 1000)
                        got_first = True
                elif kind in ("turn_completed", "error"):
                    if kind == "error":
                        raise RuntimeError(f"turn failed: {frame}")
                    totals.append((time.perf_counter() - sent) * 1000)
                    tokens.append(count)
                    break


async def run(url: str, concurrency: int, turns: int, prompt: str) -> dict[str, float]:
    first: list[float] = []
    totals: list[float] = []
    tokens: list[int] = []
    per = max(1, turns // concurrency)
    started = time.perf_counter()
    await asyncio.gather(*(worker(url, per, prompt, first, totals, tokens)
                           for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {"n": len(first), "p50": statistics.median(first), "p99": pct(first, 0.99),
            "turn_p50": statistics.median(totals), "tokens_per_s": sum(tokens) / wall}


def wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError as exc:
            if getattr(exc, "code", None):
                return
            time.sleep(0.1)
    raise TimeoutError(url)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=200, help="answer length for relay")
    parser.add_argument("--with-memory", action="store_true",
                        help="also run memory_indexer (it embeds every finished turn, off the "
                             "turn's path but on the same 2 cores)")
    args = parser.parse_args()

    fake_port, mono_port = free_port(), free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "tests.fakes.fake_anthropic", "--port",
                               str(fake_port)], cwd=ROOT)]
    fake_url = f"http://127.0.0.1:{fake_port}"
    wait_http(fake_url)
    procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench" / "monolith.py"), "--port",
                                   str(mono_port), "--anthropic-url", fake_url]))
    services = SERVICES if args.with_memory else tuple(
        s for s in SERVICES if s != "memory_indexer")
    stack = start_stack(Path(tempfile.mkdtemp(prefix="sb-bench-")), well_known_ports=False,
                        persist=False, services=services, env={"ANTHROPIC_API_KEY": "sk-bench",
                                            "ANTHROPIC_BASE_URL": fake_url,
                                            "LOG_LEVEL": "WARNING",
                                            # One bench user plays many: lift its rate.
                                            "GATEWAY_LIMITS__TURNS_PER_MINUTE_USER": "100000",
                                            "GATEWAY_LIMITS__TURNS_PER_MINUTE_ORG": "100000",
                                            "GATEWAY_LIMITS__CONCURRENT_TURNS_USER": "1000",
                                            "GATEWAY_LIMITS__SOCKETS_PER_USER": "1000"})
    try:
        stack.wait_ready(120)
        wait_http(f"http://127.0.0.1:{mono_port}/")
        pipeline = stack.gateway_url.replace("http", "ws") + "/ws?org=bench&user=bench"
        mono = f"ws://127.0.0.1:{mono_port}/ws"
        short = "[[fake tokens=5]] hello"
        long = f"[[fake tokens={args.tokens}]] tell me everything"
        # Warm up both paths (connections, JIT-free but caches, model of consumers).
        await run(pipeline, 4, 40, short)
        await run(mono, 4, 40, short)
        rows = []
        for c in (1, 20):
            p = await run(pipeline, c, args.turns, short)
            m = await run(mono, c, args.turns, short)
            rows.append((c, p, m))
        relay_p = await run(pipeline, 20, max(100, args.turns // 5), long)
        relay_m = await run(mono, 20, max(100, args.turns // 5), long)
    finally:
        stack.stop()
        for proc in procs:
            proc.terminate()
            proc.wait()

    print(f"\nServices: {', '.join(services)}")
    print("\n### First-delta latency (ms), instant provider, 5-token answers\n")
    print("| concurrency | turns | pipeline p50 | pipeline p99 | monolith p50 | monolith p99 "
          "| overhead p50 | overhead p99 | ratio p50 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c, p, m in rows:
        print(f"| {c} | {p['n']} | {p['p50']:.2f} | {p['p99']:.2f} | {m['p50']:.2f} | "
              f"{m['p99']:.2f} | {p['p50'] - m['p50']:.2f} | {p['p99'] - m['p99']:.2f} | "
              f"{p['p50'] / m['p50']:.2f}x |")
    print(f"\n### Relay, 20 concurrent streams of {args.tokens} tokens\n")
    print("| path | turns | tokens/s aggregate | µs per token (wall / tokens) | turn p50 (ms) |")
    print("|---|---|---|---|---|")
    for name, r in (("pipeline", relay_p), ("monolith", relay_m)):
        print(f"| {name} | {r['n']} | {r['tokens_per_s']:.0f} | {1e6 / r['tokens_per_s']:.1f} "
              f"| {r['turn_p50']:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
