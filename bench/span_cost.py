"""What one span costs a service, as the services make and export them.

A turn makes nine spans (gateway 2, context 4, llm_stream 3; bench/turn_path.py lists them).
This makes spans like the services' publish spans (a PRODUCER span, three attributes, the
trace context injected into a header dict) through `switchboard_common.telemetry.setup`, in
batches of 500, each flushed before the next, and reads the CPU of the calling thread (the
token path) and of the whole process (with the export thread: redaction, OTLP protobuf
encoding, the HTTP POST) per span. Three setups, one process each:
  export   every span exported over OTLP/HTTP to a local sink that drops it (production);
  record   spans recorded but no endpoint set, so nothing exported (a laptop run);
  off      OTEL_SDK_DISABLED=true: the API's no-op spans.
Usage: python bench/span_cost.py [--spans 20000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


SINK = ("import sys, time; sys.path.insert(0, sys.argv[1]); from pipeline import OtlpSink; "
        "sink = OtlpSink(); print(sink.endpoint, flush=True); time.sleep(3600)")
"""The OTLP sink in a process of its own, so that its CPU is not the measured process's."""


def measure(mode: str, spans: int) -> None:
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(ROOT / "bench")],
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    if mode == "export":
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.stdout.readline().strip()
    elif mode == "off":
        os.environ["OTEL_SDK_DISABLED"] = "true"
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    from switchboard_common.telemetry import setup

    tracer = setup("bench")
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", lambda: True)
    hot = 0.0
    process0 = time.process_time()
    done = 0
    while done < spans:
        started = time.thread_time()
        for i in range(500):
            headers: dict[str, str] = {}
            with tracer.start_as_current_span(
                    "model.requested.* publish", kind=SpanKind.PRODUCER,
                    attributes={"messaging.system": "nats",
                                "messaging.destination.name": "model.requested.*",
                                "messaging.message.id": f"model:{done + i:032x}:0"}):
                propagate.inject(headers)
        hot += time.thread_time() - started
        done += 500
        flush()
    process = time.process_time() - process0
    sink.terminate()
    print(f"{mode}\t{1e6 * hot / done:.1f}\t{1e6 * process / done:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=20000)
    parser.add_argument("--mode", choices=("export", "record", "off"))
    args = parser.parse_args()
    if args.mode:
        measure(args.mode, args.spans)
        return
    print("| setup | calling thread µs per span | process µs per span (with the export "
          "thread) |")
    print("|---|---|---|")
    for mode in ("export", "record", "off"):
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--spans",
                              str(args.spans)], capture_output=True, text=True, check=True)
        name, hot, process = out.stdout.strip().splitlines()[-1].split("\t")
        print(f"| {name} | {hot} | {process} |")


if __name__ == "__main__":
    main()
