"""Proactive path: an event published on `events.ingest.<org>.<client>` until its approval card
(`action_pending`) arrives on the owner's WebSocket, through the real processes:

    ingest (JetStream) -> context trigger match, claim, prompt -> model.requested (JetStream)
    -> llm_stream -> the fake provider (instant, scripted tool call) -> model.completed
    -> context tool loop -> actions.proposed -> action_executor policy -> agency.<org>.<user>
    -> gateway -> socket

The local Anthropic-protocol fake answers at once, so the numbers are the platform's own time.
Events are published at a fixed rate (1 and 20 per second); p50/p99 per rate in a table.
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

import httpx
import nats
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_cli.stack import SERVICES, Stack, start_stack  # noqa: E402
from switchboard_common.memory import IngestEvent, ingest_subject  # noqa: E402
from switchboard_common.streams import INGEST  # noqa: E402
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


async def run(stack: Stack, rate: float, count: int) -> list[float]:
    assert stack.secrets is not None
    ws_url = stack.gateway_url.replace("http://", "ws://") + f"/ws?org={ORG}&user={USER}"
    sent: dict[str, float] = {}
    took: list[float] = []
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
                    took.append((time.perf_counter() - sent.pop(event)) * 1e3)

        reader = asyncio.create_task(receive())
        run_id = uuid.uuid4().hex[:6]
        for i in range(count):
            event_id = f"{run_id}-{i}"
            body = IngestEvent(org_id=ORG, event_id=event_id, client_id=CLIENT, source="email",
                               title="Board prep", text="Can we move Thursday's board prep?",
                               metadata={"from": "priya@acme.example"})
            sent[event_id] = time.perf_counter()
            await js.publish(ingest_subject(ORG, CLIENT), body.model_dump_json().encode(),
                             stream=INGEST.name)
            await asyncio.sleep(1 / rate)
        await asyncio.wait_for(reader, 120)
    await nc.close()
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
            rows = [(rate, await run(stack, rate, args.events)) for rate in (1.0, 20.0)]
        finally:
            stack.stop()
    print("\n### Event ingest -> approval card on the socket (ms), instant provider\n")
    print("| events/s | events | p50 | p99 | max |\n|---|---|---|---|---|")
    for rate, took in rows:
        print(f"| {rate:g} | {len(took)} | {statistics.median(took):.1f} | "
              f"{pct(took, 0.99):.1f} | {max(took):.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
