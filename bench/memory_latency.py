"""Search latency through the REST API with 100,000 stored items across 50 clients.

A real gateway and memory_indexer (separate processes, embedded NATS and Valkey + RediSearch,
as `./dev up` runs them) answer `GET /v1/clients/<c>/memory/search`: HTTP, auth, NATS
request/reply, the query embedding, dense KNN + BM25 in one pipelined round trip, fusion and
the fetch of the final hits. The 100k items are written straight into the service's index
(random unit vectors: embedding 100k texts would take the CPU many minutes and does not change
the search cost); their texts are 25 words drawn from a Zipf-distributed vocabulary of 20,000
words, so BM25 posting lists have natural lengths. Queries are 6 such words, sequential. With
`--context` every item also has a thread context and a second vector (the worst case for the
hybrid's third ranking: its KNN then visits every chunk of the client, as the dense one does).

Run: python bench/memory_latency.py [--items 100000] [--clients 50] [--queries 1000] [--context]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import redis.asyncio as redis

from switchboard_cli.stack import start_stack
from switchboard_common.directory import Directory, User
from switchboard_memory_indexer.adapters.embedders import OnnxMiniLMEmbedder
from switchboard_memory_indexer.adapters.redis_store import RedisVectorStore
from switchboard_memory_indexer.domain.documents import Chunk

ORG, USER = "benchorg", "va"


def vocabulary(rnd: random.Random, size: int = 20_000) -> tuple[list[str], list[float]]:
    words = list(dict.fromkeys(
        "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(4, 9)))
        for _ in range(size)))
    return words, [1.0 / (rank + 1) for rank in range(len(words))]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def seed(store: RedisVectorStore, items: int, clients: int, rnd: random.Random,
               vocab: list[str], weights: list[float], context: bool) -> float:
    started = time.perf_counter()
    batch = 2000
    for start in range(0, items, batch):
        n = min(batch, items - start)
        vecs = np.random.default_rng(start).standard_normal((2, n, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=2, keepdims=True)
        await store.upsert([
            Chunk(org=ORG, client=f"client{(start + i) % clients}", item_id=f"item{start + i}",
                  chunk=0, n_chunks=1, source="note", visibility="client", user=None, title="",
                  text=" ".join(rnd.choices(vocab, weights, k=25)), occurred_at=1.7e9 + i,
                  context="the turn before" if context else "")
            for i in range(n)], vecs[0], vecs[1] if context else None)
    return time.perf_counter() - started


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--context", action="store_true")
    args = ap.parse_args()
    rnd = random.Random(1)
    vocab, weights = vocabulary(rnd)
    stack = start_stack(Path(tempfile.mkdtemp()), services=("gateway", "memory_indexer"),
                        persist=False, well_known_ports=False,
                        env={"MEMORY_INDEXER_EMBEDDER": "minilm-onnx", "LOG_LEVEL": "WARNING",
                             "GATEWAY_DEV_CREDENTIAL": "true"})
    try:
        stack.wait_ready(180)
        r = redis.Redis.from_url(stack.store_url)
        await Directory(r).add_user(ORG, User(id=USER, role="admin"))
        store = RedisVectorStore(r, "sbmem")
        await store.ensure(OnnxMiniLMEmbedder.name, OnnxMiniLMEmbedder.dim)
        load_s = await seed(store, args.items, args.clients, rnd, vocab, weights, args.context)
        print(f"loaded {args.items} items across {args.clients} clients in {load_s:.1f} s "
              f"({args.items / load_s:.0f} items/s, vector indexing included)\n")
        async with httpx.AsyncClient(base_url=stack.gateway_url + "/v1", timeout=30,
                                     headers={"X-Org": ORG, "X-User": USER}) as api:
            for c in range(args.clients):
                await api.post("/clients", json={"id": f"client{c}", "name": f"Client {c}"})
            queries = [" ".join(rnd.choices(vocab, weights, k=6)) for _ in range(args.queries)]
            rows = []
            for mode in ("hybrid", "dense", "text"):
                for q in queries[:20]:  # warm up: connections, the model's first calls
                    await api.get("/clients/client0/memory/search", params={"q": q})
                rest, server = [], []
                for i, q in enumerate(queries):
                    t0 = time.perf_counter()
                    resp = await api.get(f"/clients/client{i % args.clients}/memory/search",
                                         params={"q": q, "k": 8, "mode": mode})
                    rest.append((time.perf_counter() - t0) * 1000)
                    resp.raise_for_status()
                    server.append(resp.json()["took_ms"])
                rows.append((mode, pct(rest, .5), pct(rest, .99), pct(server, .5),
                             pct(server, .99)))
        print("| mode (k=8, 20 candidates per ranking) | REST p50 ms | REST p99 ms | "
              "memory_indexer p50 ms | memory_indexer p99 ms |")
        print("|---|---|---|---|---|")
        for mode, p50, p99, s50, s99 in rows:
            print(f"| {mode} | {p50:.1f} | {p99:.1f} | {s50:.1f} | {s99:.1f} |")
        await r.aclose()
    finally:
        stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
