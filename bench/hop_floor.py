"""The floor of the pipeline's shape: what a turn's hops cost with nothing of Switchboard on them.

Issue 13 asks for the pipeline's server CPU per 5-token turn within 2x of the monolith's, with
durability unchanged: turn and model requests stay JetStream commands with deduplication and
acks. This bench measures how much of that budget the shape alone takes. Three bare processes
pass a turn's messages exactly as the services do, and do nothing else:
  edge (a uvicorn + FastAPI WebSocket, as the gateway and the monolith) -> JetStream publish of
  the turn (Nats-Msg-Id, waits for the store's ack) -> ctx (a `PullWorker`: one standing pull
  request) -> JetStream publish of the model request, ack -> llm (a `PullWorker`) -> the model
  call as llm_stream makes it (its `AnthropicProvider`: the SDK's `client.post` on the aiohttp
  transport, events read untyped; given a `ModelRequest` built in place from the plain JSON)
  against the fake provider -> one core delta per text piece on `fl.events.<turn>`,
  JetStream publish of the result, ack -> ctx ->
  JetStream publish of the finished turn (the history stream), core publish of the terminal
  event, ack -> edge, which relays every event to its socket.
The event subjects are captured by a memory stream, as turns.events is (for resuming clients).
No authentication, limits, Valkey, history, prompt, pydantic envelopes on the wire or
telemetry: no tracer provider is set, so the `PullWorker`'s span is the API's no-op one.

In the same run, the same load client (bench/pipeline.py's) drives the monolith
(bench/monolith.py, the issue's baseline), the monolith with a turn's duties
(bench/monolith_duties.py: limits, queue, history, prompt with tools, append, traces; its own
Valkey counted) and, unless --no-pipeline, the production pipeline (authentication, limits
and OTLP export on, as bench/pipeline.py runs it) and its --variant's, in alternating rounds
so that the machine's drift falls on all of them alike. Results: docs/performance.md.
Usage: python bench/hop_floor.py [--turns 400] [--rounds 2] [--no-pipeline]
                                 [--variant "no traces:OTEL_SDK_DISABLED=true"]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import nats  # noqa: E402
from fastapi import FastAPI, WebSocket  # noqa: E402
from monolith import serve, services_provider, socket_app  # noqa: E402
from nats.js.api import RetentionPolicy, StorageType  # noqa: E402
from pipeline import (  # noqa: E402
    CpuMeter,
    OtlpSink,
    PipelineUrls,
    fixed,
    run,
    sign_in,
    stack_pids,
    start_fake,
    start_production_stack,
    wait_http,
)
from pydantic import BaseModel  # noqa: E402

from switchboard_cli.embedded import free_port, start_nats, start_valkey  # noqa: E402
from switchboard_common.envelope import utcnow  # noqa: E402
from switchboard_common.model import ChatMessage, ModelRequest  # noqa: E402
from switchboard_common.pull_worker import Delivery, PullWorker  # noqa: E402
from switchboard_common.streams import (  # noqa: E402
    ConsumerSpec,
    StreamSpec,
    ensure_consumer,
    ensure_streams,
)

ME = str(Path(__file__).resolve())

ORG = "bench"


_WORK, _KEPT = RetentionPolicy.WORK_QUEUE, RetentionPolicy.LIMITS
_TURNS = StreamSpec("FL_TURNS", ("fl.turns.>",), _WORK, StorageType.FILE, 86400.0)
_MODEL = StreamSpec("FL_MODEL", ("fl.model.>",), _WORK, StorageType.FILE, 86400.0)
_RESULTS = StreamSpec("FL_RESULTS", ("fl.results.>",), _WORK, StorageType.FILE, 86400.0)
STREAMS = (_TURNS, _MODEL, _RESULTS,
           StreamSpec("FL_HISTORY", ("fl.history.>",), _KEPT, StorageType.FILE, 86400.0),
           StreamSpec("FL_EVENTS", ("fl.events.>",), _KEPT, StorageType.MEMORY, 900.0,
                      duplicate_window_s=0.0, max_msgs_per_subject=20_000))
"""The services' streams in miniature: three work queues, the finished turns, the events."""
CONSUMERS = {spec.name: spec for spec in (
    ConsumerSpec(_TURNS, "fl_ctx_turns", "fl.turns.>"),
    ConsumerSpec(_RESULTS, "fl_ctx_results", "fl.results.>"),
    ConsumerSpec(_MODEL, "fl_llm_model", "fl.model.>"))}


class Raw(BaseModel):
    """The PullWorker validates into a model; the floor's messages are plain JSON objects,
    which the handlers read from `model_extra` (no envelope fields to check)."""

    model_config = {"extra": "allow"}


async def _publish(js: Any, subject: str, body: dict[str, Any], msg_id: str) -> None:
    await js.publish(subject, json.dumps(body).encode(), headers={"Nats-Msg-Id": msg_id})


async def _serve(role: str, nats_url: str, fake_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    workers: list[PullWorker[Raw]] = []

    def consume(name: str, handler: Any) -> None:
        workers.append(PullWorker(nc, CONSUMERS[name], Raw, handler, service=role,
                                  inbox=f"_INBOX.fl.{name}", workers=64, auto_ack=True))

    if role == "ctx":
        async def on_turn(msg: Raw, _: Delivery) -> None:
            turn = msg.model_extra or {}
            await _publish(js, f"fl.model.{ORG}", turn, f"model:{turn['turn']}:0")

        async def on_result(msg: Raw, _: Delivery) -> None:
            result = msg.model_extra or {}
            await _publish(js, f"fl.history.{ORG}", result, f"done:{result['turn']}")
            await nc.publish(f"fl.events.{result['turn']}", json.dumps(
                {"type": "turn_completed", "turn_id": result["turn"], "seq": result["seq"],
                 "text": result["text"]}).encode())

        consume("fl_ctx_turns", on_turn)
        consume("fl_ctx_results", on_result)
    else:
        provider = services_provider(fake_url)

        async def on_model(msg: Raw, _: Delivery) -> None:
            request = msg.model_extra or {}
            turn, seq = request["turn"], 0
            call = ModelRequest(org_id=ORG, turn_id=turn, user_id=ORG, client_id=ORG,
                                conversation_id="main", system="", model="bench",
                                messages=[ChatMessage(role="user", content=request["text"])],
                                deadline_at=utcnow() + timedelta(seconds=120))
            async with provider.stream(call) as stream:
                async for piece in stream:
                    seq += 1
                    await nc.publish(f"fl.events.{turn}", json.dumps(
                        {"type": "delta", "turn_id": turn, "seq": seq, "text": piece}).encode())
            await _publish(js, f"fl.results.{ORG}",
                           {"turn": turn, "seq": seq + 1, "text": stream.completion.text},
                           f"result:{turn}:0")

        consume("fl_llm_model", on_model)
    for worker in workers:
        await worker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def _edge_app(nats_url: str) -> FastAPI:
    waiting: dict[str, asyncio.Queue[bytes]] = {}
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nc = await nats.connect(nats_url)

        async def on_event(msg: Any) -> None:
            queue = waiting.get(msg.subject.rsplit(".", 1)[-1])
            if queue is not None:
                queue.put_nowait(msg.data)

        await nc.subscribe("fl.events.>", cb=on_event)
        state["js"] = nc.jetstream()
        yield
        await nc.close()

    async def turn(socket: WebSocket, msg: dict[str, Any]) -> None:
        key = msg["idempotency_key"]
        queue = waiting[key] = asyncio.Queue()
        try:
            await socket.send_text(json.dumps({"type": "turn_started", "turn_id": key}))
            await _publish(state["js"], f"fl.turns.{ORG}", {"turn": key, "text": msg["text"]},
                           f"turn:{key}")
            while True:
                event = await queue.get()
                await socket.send_text(event.decode())
                if b'"turn_completed"' in event:
                    return
        finally:
            del waiting[key]

    return socket_app(turn, lifespan)


async def _prepare(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, STREAMS)
    for spec in CONSUMERS.values():
        await ensure_consumer(js, spec)
    await nc.close()


async def _start_floor(nats_url: str, fake_url: str
                       ) -> tuple[dict[str, subprocess.Popen[bytes]], str]:
    await _prepare(nats_url)
    procs = {}
    for role in ("ctx", "llm"):
        procs[role] = subprocess.Popen([sys.executable, ME, "--role", role, "--nats", nats_url,
                                        "--fake", fake_url], stdout=subprocess.PIPE)
    for proc in procs.values():
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    port = free_port()
    procs["edge"] = subprocess.Popen([sys.executable, ME, "--role", "edge", "--nats", nats_url,
                                      "--port", str(port)])
    return procs, f"ws://127.0.0.1:{port}/ws"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-pipeline", action="store_true")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,K=V",
                        help="also run the pipeline with these settings added, e.g. "
                             "'no traces:OTEL_SDK_DISABLED=true' (repeatable)")
    args = parser.parse_args()
    variants: dict[str, dict[str, str]] = {} if args.no_pipeline else {"pipeline": {}}
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        variants[f"pipeline, {name}"] = dict(a.split("=", 1) for a in assignments.split(","))

    # Everything started is stopped, whatever fails after it (the servers run in sessions
    # of their own and would outlive this process).
    with contextlib.ExitStack() as cleanup:
        def started(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
            def stop() -> None:
                proc.terminate()
                proc.wait()

            cleanup.callback(stop)
            return proc

        fake, fake_url = start_fake()
        started(fake)
        mono_port = free_port()
        mono = started(subprocess.Popen([sys.executable, str(ROOT / "bench" / "monolith.py"),
                                         "--port", str(mono_port), "--anthropic-url",
                                         fake_url]))
        data = Path(tempfile.mkdtemp(prefix="sb-floor-"))
        nats_server = start_nats(data)
        cleanup.callback(nats_server.stop)
        sink = OtlpSink()
        cleanup.callback(sink.close)
        # The monolith with the turn's duties: its own Valkey, spans exported as the services'.
        valkey = start_valkey(data, persist=False)  # as the pipeline's in this bench
        cleanup.callback(valkey.stop)
        duties_port = free_port()
        duties = started(subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "monolith_duties.py"), "--port",
             str(duties_port), "--anthropic-url", fake_url, "--valkey", valkey.url],
            env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint}))
        floor, floor_ws = await _start_floor(nats_server.url, fake_url)
        for proc in floor.values():
            started(proc)
        wait_http(f"http://127.0.0.1:{mono_port}/")
        wait_http(f"http://127.0.0.1:{duties_port}/")
        wait_http(floor_ws.replace("ws://", "http://").removesuffix("/ws") + "/")
        paths: dict[str, tuple[Any, CpuMeter]] = {
            "monolith": (fixed(f"ws://127.0.0.1:{mono_port}/ws"),
                         CpuMeter({"monolith": mono.pid})),
            "monolith with duties": (fixed(f"ws://127.0.0.1:{duties_port}/ws"),
                                     CpuMeter({"monolith": duties.pid,
                                               "valkey": valkey.proc.pid})),
            "floor": (fixed(floor_ws), CpuMeter({**{n: p.pid for n, p in floor.items()},
                                                 "nats": nats_server.proc.pid}))}
        for name, env in variants.items():
            stack, _ = start_production_stack(fake_url, sink.endpoint, env=env)
            cleanup.callback(stack.stop)
            stack.wait_ready(120)
            paths[name] = (PipelineUrls(stack.gateway_url, await sign_in(stack)),
                           CpuMeter(stack_pids(stack)))
        short = "[[fake tokens=5]] hello"
        for url, _ in paths.values():
            await run(url, 4, 40, short)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, (url, meter) in paths.items():
                results[name].append(await run(url, 20, args.turns, short, meter))

    print(f"\n### CPU per 5-token turn (ms), concurrency 20, {args.turns} turns per round, "
          f"{args.rounds} rounds (one column per round)\n")
    print("| path | CPU ms per turn | ratio to the monolith | first delta p50 (ms) | "
          "first delta p99 (ms) | by process (first round) |")
    print("|---|---|---|---|---|---|")
    base = results["monolith"]
    for name, rounds in results.items():
        cpu = " / ".join(f"{r['cpu']:.2f}" for r in rounds)
        ratio = " / ".join(f"{r['cpu'] / m['cpu']:.2f}x"
                           for r, m in zip(rounds, base, strict=True))
        p50, p99 = (" / ".join(f"{r[q]:.1f}" for r in rounds) for q in ("p50", "p99"))
        parts = ", ".join(f"{k[4:]} {v:.2f}" for k, v in rounds[0].items()
                          if k.startswith("cpu:"))
        print(f"| {name} | {cpu} | {ratio} | {p50} | {p99} | {parts} |")

    def median(name: str) -> float:
        return statistics.median(r["cpu"] for r in results[name])

    mono_cpu, floor_cpu = median("monolith"), median("floor")
    duties_cpu = median("monolith with duties") - mono_cpu
    print(f"\nMedians of the rounds: the shape costs {floor_cpu - mono_cpu:+.2f} ms per turn "
          f"over the monolith, the duties (in one process) {duties_cpu:+.2f} ms.")
    if "pipeline" in results:
        tax = median("pipeline") - floor_cpu - duties_cpu
        print(f"The pipeline costs {tax:.2f} ms per turn more than the floor plus the duties: "
              "the work each hop repeats.")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(add_help=False)
    cli.add_argument("--role")
    cli.add_argument("--nats")
    cli.add_argument("--fake")
    cli.add_argument("--port", type=int)
    known, _ = cli.parse_known_args()
    if known.role == "edge":
        serve(_edge_app(known.nats), known.port)
    elif known.role:
        asyncio.run(_serve(known.role, known.nats, known.fake))
    else:
        asyncio.run(main())
