"""Proactive path: an event published on `events.ingest.<org>.<client>` until its approval card
(`action_pending`) arrives on the owner's WebSocket, through the real processes:

    ingest (JetStream) -> context trigger match, claim, prompt -> model.requested (JetStream)
    -> llm_stream -> the fake provider (instant, scripted tool call) -> model.completed
    -> context tool loop -> actions.proposed -> action_executor policy -> agency.<org>.<user>
    -> gateway -> socket

The local Anthropic-protocol fake answers at once, so the numbers are the platform's own time.
Events are published at a fixed rate (1 and 20 per second); p50/p99 per rate in a table, then
where the time goes: the same events timed at each hop by an observer subscribed (as the admin
user) to the subjects in between (model.requested, model.completed, actions.proposed, agency).
memory_indexer is not started (as in bench/pipeline.py: it would index the same events on the
same 2 cores, off this path); the dev credential speaks for the bench user.
Usage: python bench/proactive.py [--events 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats
import websockets
from nats.aio.client import Client as NatsClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_cli.stack import SERVICES, Stack, start_stack  # noqa: E402
from switchboard_common.memory import IngestEvent, ingest_subject  # noqa: E402
from switchboard_common.streams import INGEST  # noqa: E402
from switchboard_common.triggers import background_turn_id  # noqa: E402
from tests.fakes.fake_anthropic import FakeAnthropic  # noqa: E402
from tests.people import add_people  # noqa: E402

ORG, USER, CLIENT = "bench", "va1", "sarah"


async def setup(stack: Stack, fake: FakeAnthropic) -> None:
    await add_people(stack.store_url, ORG, (USER,))
    script = fake.script("bench-hold", [
        [{"tool": "calendar_create", "input": {
            "title": "Board prep", "start": "2031-03-06T10:00:00+00:00", "confidence": 0.9,
            "rationale": "the sender asks to move it"}}],
        [{"text": "Proposed moving board prep."}]])
    async with httpx.AsyncClient(base_url=stack.gateway_url + "/v1", timeout=30,
                                 headers={"X-Org": ORG, "X-User": USER}) as http:
        (await http.post("/clients", json={"id": CLIENT, "name": "Sarah"})).raise_for_status()
        (await http.put(f"/clients/{CLIENT}/skills", json={
            "autonomy": {"mode": "suggest"}, "enabled_tools": ["calendar_create"],
            "triggers": [{"name": "moves", "sources": ["email"], "keywords": ["move"],
                          "instruction": f"{script} propose the calendar change"}]})
         ).raise_for_status()


HOPS = (("model_requested", "model.requested"), ("model_completed", "model.completed"),
        ("proposed", "actions.proposed"), ("agency", "agency"))
"""(mark, subject prefix) in path order; the first model call (iteration 0) of each turn."""


async def observe(stack: Stack, marks: dict[str, dict[str, float]]) -> NatsClient:
    """Note when each background turn's messages pass each hop (first sighting wins)."""
    assert stack.secrets is not None
    nc = await nats.connect(stack.env["NATS_URL"], user="admin",
                            password=stack.secrets.nats["admin"])

    def noting(mark: str) -> Any:
        async def note(msg: Any) -> None:
            body = json.loads(msg.data)
            if body.get("iteration", 0) == 0:
                marks.setdefault(body.get("turn_id", ""), {}).setdefault(
                    mark, time.perf_counter())
        return note

    for mark, prefix in HOPS:
        suffix = f"{ORG}.{USER}" if mark == "agency" else ORG
        await nc.subscribe(f"{prefix}.{suffix}", cb=noting(mark))
    return nc


def hop_rows(sent: dict[str, float], marks: dict[str, dict[str, float]],
             socket: dict[str, float]) -> list[tuple[str, list[float]]]:
    names = ("ingest -> model request (context: trigger, claim, prompt)",
             "model request -> result (llm_stream, the instant fake)",
             "model result -> proposal (context: tool loop)",
             "proposal -> agency card (action_executor: policy, calibration)",
             "agency card -> socket (gateway)")
    rows: list[tuple[str, list[float]]] = [(n, []) for n in names]
    for turn, t0 in sent.items():
        m = marks.get(turn, {})
        points = [t0, *(m.get(mark) for mark, _ in HOPS), socket.get(turn)]
        if all(p is not None for p in points):
            for (_, values), a, b in zip(rows, points, points[1:], strict=False):
                values.append((b - a) * 1e3)  # type: ignore[operator]
    return rows


async def run(stack: Stack, rate: float, count: int,
              hops: list[tuple[str, list[float]]] | None = None) -> list[float]:
    assert stack.secrets is not None
    ws_url = stack.gateway_url.replace("http://", "ws://") + f"/ws?org={ORG}&user={USER}"
    sent: dict[str, float] = {}
    by_turn: dict[str, float] = {}
    socket: dict[str, float] = {}
    marks: dict[str, dict[str, float]] = {}
    took: list[float] = []
    observer = await observe(stack, marks)
    nc = await nats.connect(stack.env["NATS_URL"], user="ingest",
                            password=stack.secrets.nats["ingest"], inbox_prefix="_INBOX.ingest")
    js = nc.jetstream()
    async with websockets.connect(ws_url, max_size=None) as ws:
        await asyncio.sleep(0.3)

        async def receive() -> None:
            while len(took) < count:
                frame = json.loads(await ws.recv())
                if frame.get("type") != "action_pending":
                    continue
                event = str(frame.get("caused_by")).rsplit(":", 1)[-1]
                if event in sent:
                    socket[str(frame.get("turn_id"))] = now = time.perf_counter()
                    took.append((now - sent.pop(event)) * 1e3)

        reader = asyncio.create_task(receive())
        run_id = uuid.uuid4().hex[:6]
        for i in range(count):
            event_id = f"{run_id}-{i}"
            body = IngestEvent(org_id=ORG, event_id=event_id, client_id=CLIENT, source="email",
                               title="Board prep", text="Can we move Thursday's board prep?",
                               metadata={"from": "priya@acme.example"})
            sent[event_id] = by_turn[background_turn_id(ORG, CLIENT, event_id)] = (
                time.perf_counter())
            await js.publish(ingest_subject(ORG, CLIENT), body.model_dump_json().encode(),
                             stream=INGEST.name)
            await asyncio.sleep(1 / rate)
        await asyncio.wait_for(reader, 120)
    await nc.close()
    await observer.close()
    if hops is not None:
        hops.extend(hop_rows(by_turn, marks, socket))
    return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    with FakeAnthropic() as fake:
        stack = start_stack(
            Path(tempfile.mkdtemp(prefix="sb-bench-")), well_known_ports=False, persist=False,
            services=tuple(s for s in SERVICES if s != "memory_indexer"),
            env={"ANTHROPIC_API_KEY": "sk-bench", "ANTHROPIC_BASE_URL": fake.base_url,
                 "LOG_LEVEL": "WARNING", "GATEWAY_DEV_CREDENTIAL": "true",
                 "CONTEXT_MEMORY_SEARCH": "false",
                 "CONTEXT_TRIGGER_PER_CLIENT_PER_MIN": "100000",
                 "CONTEXT_TRIGGER_PER_ORG_PER_MIN": "100000",
                 # The executor's own bound (30 actions a minute per client) would turn
                 # later proposals into refusals; lifted like the trigger rates.
                 "ACTION_EXECUTOR_RATE_LIMIT_PER_MINUTE": "100000",
                 # All events land in one activity conversation; its summary would be asked
                 # of the scripted fake (which answers with the tool call): not measured here.
                 "CONTEXT_HISTORY_TOKEN_BUDGET": "200000"})
        try:
            stack.wait_ready(120)
            await setup(stack, fake)
            await run(stack, 5, 5)  # warm up consumers, caches and connections
            hops: dict[float, list[tuple[str, list[float]]]] = {1.0: [], 20.0: []}
            rows = [(rate, await run(stack, rate, args.events, hops[rate]))
                    for rate in (1.0, 20.0)]
        finally:
            stack.stop()
    print("\n### Event ingest -> approval card on the socket (ms), instant provider\n")
    print("| events/s | events | p50 | p99 | max |\n|---|---|---|---|---|")
    for rate, took in rows:
        print(f"| {rate:g} | {len(took)} | {statistics.median(took):.1f} | "
              f"{pct(took, 0.99):.1f} | {max(took):.1f} |")
    print("\n### Where the time goes (ms per hop, p50 / p99)\n")
    print("| hop | 1/s | 20/s |\n|---|---|---|")
    for (name, slow), (_, fast) in zip(hops[1.0], hops[20.0], strict=True):
        cells = [f"{statistics.median(v):.1f} / {pct(v, 0.99):.1f}" if v else "-"
                 for v in (slow, fast)]
        print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    asyncio.run(main())
