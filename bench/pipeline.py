"""Pipeline benchmark: what the microservices cost on top of the model.

With a local Anthropic-protocol server answering instantly, send turns over the WebSocket and
record, for concurrency 1 and 20:
  (a) time from sending `user_message` to the first `delta` through the full pipeline
      (gateway -> JetStream -> context -> JetStream -> llm_stream -> core NATS -> gateway);
  (b) the same through the monolith baseline (one process calling the provider directly);
  (c) relay throughput: aggregate streamed tokens/s and per-token cost with long answers
      (the fake writes each event on its own, as the API does; tokens are counted by words,
      since llm_stream sends tokens that arrived together as one delta: the tables print the
      delta frames per turn).
  (d) server CPU per turn, per process (services, NATS and Valkey for the pipeline; the
      monolith process for the monolith; the fake provider and this load client excluded),
      read from /proc with psutil around each phase.
Authentication, limits and telemetry run as in production: the dev credential is off (the
bench signs in with a one-time link and opens each socket with a ticket) and every service
exports its spans over OTLP to a local sink that discards them.
Prints markdown tables. Usage: python bench/pipeline.py [--turns 500] [--tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_cli.embedded import free_port  # noqa: E402
from switchboard_cli.stack import SERVICES, Stack, start_stack  # noqa: E402
from switchboard_common.credentials import SigninLinks  # noqa: E402
from switchboard_common.directory import Directory, User  # noqa: E402
from switchboard_common.valkey import connect_valkey  # noqa: E402

ORG, USER = "bench", "bench"


class OtlpSink:
    """Accepts OTLP/HTTP exports and drops them: the services pay for building and sending
    their spans as in production, and this process spends nothing decoding them. With `keep`
    it appends each export's body there, undecoded (bench/turn_path.py reads them after)."""

    def __init__(self, keep: list[bytes] | None = None) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if keep is not None:
                    keep.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()


class CpuMeter:
    """CPU seconds (user + system) of named processes, from /proc via psutil."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}

    def read(self) -> dict[str, float]:
        out = {}
        for name, proc in self.procs.items():
            t = proc.cpu_times()
            out[name] = t.user + t.system
        return out


def stack_pids(stack: Stack) -> dict[str, int]:
    pids = {name: proc.pid for name, proc in stack.procs.items()}
    if stack.nats is not None:
        pids["nats"] = stack.nats.proc.pid
    if stack.valkey is not None:
        pids["valkey"] = stack.valkey.proc.pid
    return pids


async def sign_in(stack: Stack) -> str:
    """A session for the bench user, the way a person gets one: an admin created in the
    directory, a one-time sign-in link, POST /v1/auth/signin."""
    client = await connect_valkey(stack.store_url, 5.0, None)
    try:
        await Directory(client).add_user(ORG, User(id=USER, role="admin"))
        token = await SigninLinks(client).issue(ORG, USER, 300)
    finally:
        await client.aclose()
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        r = await http.post("/v1/auth/signin", json={"token": token})
        r.raise_for_status()
        return str(r.json()["session"])


async def valkey_calls(store_url: str) -> dict[str, int]:
    """Commands served so far by Valkey, by command (INFO commandstats)."""
    client = await connect_valkey(store_url, 5.0, None)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


class PipelineUrls:
    """Each socket opens with a fresh one-time ticket, as the web app does."""

    def __init__(self, gateway_url: str, session: str) -> None:
        self.http = httpx.AsyncClient(base_url=gateway_url,
                                      headers={"Authorization": f"Bearer {session}"})
        self.ws = gateway_url.replace("http", "ws") + "/ws?ticket="

    async def __call__(self) -> str:
        r = await self.http.post("/v1/auth/ws-ticket")
        r.raise_for_status()
        return self.ws + str(r.json()["ticket"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


UrlSource = Callable[[], Awaitable[str]]


def fixed(url: str) -> UrlSource:
    async def get() -> str:
        return url
    return get


async def worker(url: UrlSource, turns: int, prompt: str, first: list[float], totals: list[float],
                 tokens: list[int], frames: list[int]) -> None:
    # One client per worker: turns of one conversation run one at a time by design.
    client = f"bench{uuid.uuid4().hex[:8]}"
    async with websockets.connect(await url(), max_size=None) as ws:
        for _ in range(turns):
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "user_message", "client_id": client,
                                      "text": prompt, "idempotency_key": uuid.uuid4().hex}))
            got_first = False
            count = deltas = 0
            while True:
                frame = json.loads(await ws.recv())
                kind = frame["type"]
                if kind == "delta":
                    # The fake answers one word per token; llm_stream may send several
                    # tokens in one delta (those that arrived together), so count words.
                    count += len(frame["text"].split())
                    deltas += 1
                    if not got_first:
                        first.append((time.perf_counter() - sent) * 1000)
                        got_first = True
                elif kind in ("turn_completed", "error"):
                    if kind == "error":
                        raise RuntimeError(f"turn failed: {frame}")
                    totals.append((time.perf_counter() - sent) * 1000)
                    tokens.append(count)
                    frames.append(deltas)
                    break


async def run(url: UrlSource, concurrency: int, turns: int, prompt: str,
              meter: CpuMeter | None = None) -> dict[str, float]:
    first: list[float] = []
    totals: list[float] = []
    tokens: list[int] = []
    frames: list[int] = []
    per = max(1, turns // concurrency)
    cpu0 = meter.read() if meter else {}
    started = time.perf_counter()
    await asyncio.gather(*(worker(url, per, prompt, first, totals, tokens, frames)
                           for _ in range(concurrency)))
    wall = time.perf_counter() - started
    result = {"n": len(first), "p50": statistics.median(first), "p99": pct(first, 0.99),
              "turn_p50": statistics.median(totals), "tokens_per_s": sum(tokens) / wall,
              "tokens": sum(tokens) / len(tokens), "deltas": sum(frames) / len(frames)}
    if meter:
        cpu1 = meter.read()
        for name in cpu1:
            result[f"cpu:{name}"] = (cpu1[name] - cpu0[name]) * 1000 / len(first)
        result["cpu"] = sum(v for k, v in result.items() if k.startswith("cpu:"))
    return result


async def idle_sockets(url: UrlSource, n: int, pid: int) -> float:
    """Gateway RSS per idle socket (KB): open n sockets (each offers permessage-deflate, as
    browsers do), let them sit, read the process's RSS, close them."""
    proc = psutil.Process(pid)
    before = proc.memory_info().rss
    sockets = [await websockets.connect(await url(), max_size=None) for _ in range(n)]
    await asyncio.sleep(1.0)
    after = proc.memory_info().rss
    await asyncio.gather(*(ws.close() for ws in sockets))
    return float(after - before) / n / 1024


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


def start_fake() -> tuple[subprocess.Popen[bytes], str]:
    """The fake provider on a free port, answering: its process and its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.fake_anthropic", "--port",
                             str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_http(url)
    return proc, url


def start_production_stack(fake_url: str, otlp_endpoint: str, *, ws_compression: bool = False,
                           with_memory: bool = False,
                           trace_sample: float | None = None,
                           env: Mapping[str, str] | None = None) -> tuple[Stack, tuple[str, ...]]:
    """The services on their own NATS and Valkey as in production (see the module's
    docstring), talking to the fake provider at `fake_url`; not yet waited for. `env` is
    added last (a variant of the production settings, bench/hop_floor.py)."""
    services = SERVICES if with_memory else tuple(s for s in SERVICES if s != "memory_indexer")
    # Without memory_indexer nobody answers memory searches: context would fail every turn
    # with warming_up, so it skips them (as the monolith has no memory either).
    memory = {} if with_memory else {"CONTEXT_MEMORY_SEARCH": "false"}
    # Production exports every trace (the SDK's default sampler); an operator may sample.
    sampling = {} if trace_sample is None else {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": str(trace_sample)}
    stack = start_stack(Path(tempfile.mkdtemp(prefix="sb-bench-")), well_known_ports=False,
                        persist=False, services=services, env={"ANTHROPIC_API_KEY": "sk-bench",
                                            "ANTHROPIC_BASE_URL": fake_url,
                                            "LOG_LEVEL": "WARNING",
                                            "GATEWAY_DEV_CREDENTIAL": "false",
                                            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
                                            # One bench user plays many: lift its rate.
                                            "GATEWAY_LIMITS__TURNS_PER_MINUTE_USER": "100000",
                                            "GATEWAY_LIMITS__TURNS_PER_MINUTE_ORG": "100000",
                                            "GATEWAY_LIMITS__CONCURRENT_TURNS_USER": "1000",
                                            "GATEWAY_LIMITS__SOCKETS_PER_USER": "10000",
                                            "GATEWAY_WS_COMPRESSION": str(ws_compression),
                                            **memory, **sampling, **(env or {})})
    return stack, services


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=200, help="answer length for relay")
    parser.add_argument("--idle-sockets", type=int, default=1000,
                        help="idle sockets opened to measure gateway RSS per socket")
    parser.add_argument("--ws-compression", action="store_true",
                        help="turn on the gateway's permessage-deflate (off by default)")
    parser.add_argument("--with-memory", action="store_true",
                        help="also run memory_indexer (it embeds every finished turn, off the "
                             "turn's path but on the same 2 cores)")
    parser.add_argument("--monolith-aiohttp", action="store_true",
                        help="the monolith's SDK on the aiohttp transport llm_stream uses (the "
                             "issue's baseline is the SDK's default, httpx)")
    parser.add_argument("--trace-sample", type=float, default=None, metavar="RATIO",
                        help="sample traces at RATIO (parentbased_traceidratio) instead of "
                             "exporting every one as production does by default")
    args = parser.parse_args()

    fake, fake_url = start_fake()
    mono_port = free_port()
    procs = [fake]
    procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench" / "monolith.py"), "--port",
                                   str(mono_port), "--anthropic-url", fake_url,
                                   *(["--aiohttp"] if args.monolith_aiohttp else [])]))
    sink = OtlpSink()
    stack, services = start_production_stack(fake_url, sink.endpoint,
                                             ws_compression=args.ws_compression,
                                             with_memory=args.with_memory,
                                             trace_sample=args.trace_sample)
    try:
        stack.wait_ready(120)
        wait_http(f"http://127.0.0.1:{mono_port}/")
        pipeline = PipelineUrls(stack.gateway_url, await sign_in(stack))
        mono = fixed(f"ws://127.0.0.1:{mono_port}/ws")
        p_meter = CpuMeter(stack_pids(stack))
        m_meter = CpuMeter({"monolith": procs[1].pid})
        short = "[[fake tokens=5]] hello"
        # Each event written on its own, as the API streams them (the 5-token answers come
        # in one write): what the relay sees depends on how fast it reads, not on the fake.
        long = f"[[fake tokens={args.tokens} each]] tell me everything"
        # Warm up both paths (connections, caches, consumers).
        await run(pipeline, 4, 40, short)
        await run(mono, 4, 40, short)
        rows = []
        for c in (1, 20):
            calls0 = await valkey_calls(stack.store_url)
            p = await run(pipeline, c, args.turns, short, p_meter)
            calls1 = await valkey_calls(stack.store_url)
            m = await run(mono, c, args.turns, short, m_meter)
            rows.append((c, p, m))
        relay_p = await run(pipeline, 20, max(100, args.turns // 5), long, p_meter)
        relay_m = await run(mono, 20, max(100, args.turns // 5), long, m_meter)
        idle_kb = await idle_sockets(pipeline, args.idle_sockets, stack.procs["gateway"].pid)
    finally:
        stack.stop()
        sink.close()
        for proc in procs:
            proc.terminate()
            proc.wait()

    print(f"\nServices: {', '.join(services)}; dev credential off, OTLP export on; monolith "
          f"on the SDK's {'aiohttp' if args.monolith_aiohttp else 'default (httpx)'} transport")
    print("\n### First-delta latency (ms), instant provider, 5-token answers\n")
    print("| concurrency | turns | pipeline p50 | pipeline p99 | monolith p50 | monolith p99 "
          "| overhead p50 | overhead p99 | ratio p50 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c, p, m in rows:
        print(f"| {c} | {p['n']} | {p['p50']:.2f} | {p['p99']:.2f} | {m['p50']:.2f} | "
              f"{m['p99']:.2f} | {p['p50'] - m['p50']:.2f} | {p['p99'] - m['p99']:.2f} | "
              f"{p['p50'] / m['p50']:.2f}x |")
    print(f"\n### Relay, 20 concurrent streams of {args.tokens} tokens\n")
    print("| path | turns | tokens/s aggregate | µs per token (wall / tokens) | turn p50 (ms) "
          "| delta frames per turn |")
    print("|---|---|---|---|---|---|")
    for name, r in (("pipeline", relay_p), ("monolith", relay_m)):
        print(f"| {name} | {r['n']} | {r['tokens_per_s']:.0f} | {1e6 / r['tokens_per_s']:.1f} "
              f"| {r['turn_p50']:.1f} | {r['deltas']:.1f} |")
    short_p, short_m = rows[-1][1], rows[-1][2]
    print("\n### Server CPU per turn (ms), concurrency 20\n")
    print("| work | path | CPU ms per turn | CPU µs per extra token | turns/s per core "
          "| delta frames per turn |")
    print("|---|---|---|---|---|---|")
    for label, ps, pl in (("pipeline", short_p, relay_p), ("monolith", short_m, relay_m)):
        extra = (pl["cpu"] - ps["cpu"]) * 1000 / max(1.0, pl["tokens"] - ps["tokens"])
        print(f"| {ps['tokens']:.0f}-token answers | {label} | {ps['cpu']:.2f} | - "
              f"| {1000 / ps['cpu']:.0f} | {ps['deltas']:.1f} |")
        print(f"| {pl['tokens']:.0f}-token answers | {label} | {pl['cpu']:.2f} | {extra:.1f} "
              f"| {1000 / pl['cpu']:.0f} | {pl['deltas']:.1f} |")
    print(f"\nRatio pipeline/monolith, 5-token turns: {short_p['cpu'] / short_m['cpu']:.1f}x")
    print("\n### Valkey commands per 5-token turn (concurrency 20 phase)\n")
    per_turn = {k: (v - calls0.get(k, 0)) / rows[-1][1]["n"] for k, v in calls1.items()}
    print("| command | per turn |\n|---|---|")
    for k, v in sorted(per_turn.items(), key=lambda kv: -kv[1]):
        if v >= 0.05:
            print(f"| {k} | {v:.2f} |")
    print(f"| total | {sum(per_turn.values()):.2f} |")
    print(f"\nGateway RSS per idle socket ({args.idle_sockets} sockets, permessage-deflate "
          f"{'on' if args.ws_compression else 'off'}): {idle_kb:.1f} KB")
    print("\n### Pipeline CPU per turn by process (ms), concurrency 20\n")
    names = [k[4:] for k in short_p if k.startswith("cpu:")]
    print("| work | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, r in (("5-token", short_p), (f"{args.tokens}-token", relay_p)):
        print(f"| {label} | " + " | ".join(f"{r['cpu:' + n]:.2f}" for n in names) + " |")


if __name__ == "__main__":
    asyncio.run(main())
