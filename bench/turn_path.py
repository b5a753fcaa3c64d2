"""Where a turn's first-delta time goes, hop by hop, read from the services' own spans.

Runs the production stack of bench/pipeline.py (sign-in, limits, OTLP export on, the fake
provider answering instantly) and sends turns one at a time (concurrency 1) or from several
clients at once (--concurrency). The OTLP sink keeps every export; afterwards each turn's
trace is rebuilt from its spans (one host, so the processes' clocks agree) and, for every span,
its start and end are taken relative to the gateway's `turn` span. The table lists the spans in
the order they start (median and p99 over the turns, ms) and the gap before each: the time no
span of the turn (its root aside) covered, which is NATS delivery, a consumer waiting for its
pull, work done outside a span, or a process waiting for a core. The client's first delta is
printed last, measured by this process.

Usage: python bench/turn_path.py [--turns 300] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)
from pipeline import (  # noqa: E402
    OtlpSink,
    PipelineUrls,
    pct,
    run,
    sign_in,
    start_fake,
    start_production_stack,
)

PROMPT = "[[fake tokens=5]] hello"


def traces(bodies: list[bytes]) -> dict[bytes, list[tuple[str, int, int]]]:
    """trace id -> [(service: span name, start ns, end ns)]."""
    out: dict[bytes, list[tuple[str, int, int]]] = defaultdict(list)
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes
                            if a.key == "service.name"), "?")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    out[span.trace_id].append((f"{service}: {span.name}",
                                               span.start_time_unix_nano, span.end_time_unix_nano))
    return out


def hops(found: dict[bytes, list[tuple[str, int, int]]]
         ) -> tuple[int, dict[str, list[tuple[float, float]]]]:
    """Per span name, (start, end) in ms after the gateway's turn span started, over the
    traces that hold a whole turn (a turn span and a model call)."""
    per: dict[str, list[tuple[float, float]]] = defaultdict(list)
    turns = 0
    for spans in found.values():
        root = [s for s in spans if s[0] == "gateway: turn"]
        if len(root) != 1 or not any(" chat " in s[0] for s in spans):
            continue
        turns += 1
        t0 = root[0][1]
        seen: set[str] = set()
        for name, start, end in sorted(spans, key=lambda s: s[1]):
            if name in seen:  # a name twice in one turn: keep the first
                continue
            seen.add(name)
            per[name].append(((start - t0) / 1e6, (end - t0) / 1e6))
    return turns, per


async def measure(turns: int, concurrency: int) -> tuple[dict[str, float], list[bytes]]:
    kept: list[bytes] = []
    fake, fake_url = start_fake()
    sink = OtlpSink(keep=kept)
    stack, _ = start_production_stack(fake_url, sink.endpoint)
    try:
        stack.wait_ready(120)
        urls = PipelineUrls(stack.gateway_url, await sign_in(stack))
        await run(urls, 4, 40, PROMPT)
        await asyncio.sleep(1.5)  # the warm-up's spans out of the way
        kept.clear()
        result = await run(urls, concurrency, turns, PROMPT)
        await asyncio.sleep(2.0)  # let every batch processor export
    finally:
        stack.stop()
        sink.close()
        fake.terminate()
        fake.wait()
    return result, kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    result, bodies = asyncio.run(measure(args.turns, args.concurrency))
    n, per = hops(traces(bodies))
    order = sorted(per, key=lambda k: statistics.median(s for s, _ in per[k]))
    print(f"\n### Where the first delta's time goes: {n} turns, concurrency "
          f"{args.concurrency} (ms after the gateway's turn span started)\n")
    print("| span | turns | start p50 | start p99 | duration p50 | duration p99 "
          "| gap before p50 |")
    print("|---|---|---|---|---|---|---|")
    ends: list[float] = []  # median ends of the spans started so far, the turn span aside
    for name in order:
        starts = [s for s, _ in per[name]]
        durations = [e - s for s, e in per[name]]
        start = statistics.median(starts)
        gap = max(start - max(ends, default=0.0), 0.0)  # 0 while an earlier span is open
        print(f"| {name} | {len(starts)} | {start:.2f} | {pct(starts, 0.99):.2f} "
              f"| {statistics.median(durations):.2f} | {pct(durations, 0.99):.2f} "
              f"| {gap:.2f} |")
        if name != "gateway: turn":
            ends.append(statistics.median(e for _, e in per[name]))
    print(f"\nClient first delta (from sending the message): p50 {result['p50']:.2f} ms, "
          f"p99 {result['p99']:.2f} ms")


if __name__ == "__main__":
    main()
