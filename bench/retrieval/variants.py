"""Fusion and query-processing variants on both eval sets, with a split: recall@10 and MRR for
all questions and for each half of the clients (A: the first half of the conversations or
clients, which the variants were looked at on; B: the rest, reported, not looked at first).

Each question's dense and BM25 rankings are read once, 100 deep, from the real RediSearch
adapter (`_ranked`), and every fusion is computed offline over those lists, so the variants
differ only in how the two lists are combined. Variants that change the lists themselves:
`--qdrop` drops question words from the keyword query, `--context` embeds each dialogue turn
after the turn before it in the same session instead (contextual chunks), and
`--second-vector` keeps the plain vectors and adds a ranking by second, contextual vectors:
either each conversation turn embedded after the turn before it as one passage (other items as
they are), combined as the best of an item's two cosines or fused as a third ranking; or the
shipped form (the mean of a turn's vector and its context's, contexts from the REST upload
rule, merged with the dense scores of chunks without context: ports.contextual_ranking).

Run: python bench/retrieval/variants.py [--qdrop] [--context] [--second-vector]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import redis.asyncio as redis

sys.path.insert(0, str(Path(__file__).parent))
import eval as ev

from switchboard_cli.embedded import start_valkey
from switchboard_memory_indexer.adapters.embedders import OnnxMiniLMEmbedder
from switchboard_memory_indexer.adapters.redis_store import RedisVectorStore
from switchboard_memory_indexer.domain.documents import Chunk, chunks_from_event
from switchboard_memory_indexer.domain.fusion import zscore_fusion
from switchboard_memory_indexer.domain.ports import Scope, contextual_ranking, embed_chunks
from switchboard_memory_indexer.domain.text import tokens

Ranking = list[tuple[str, float]]
DEPTH = 100
QUESTION_WORDS = frozenset((
    "what", "when", "where", "which", "who", "whom", "whose", "why", "how", "did", "do", "does",
    "has", "have", "had", "were", "can", "could", "would", "should"))


def rrf(lists: Sequence[Ranking], depth: int, k: int = 60) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in lists:
        for rank, (doc, _) in enumerate(ranking[:depth], start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda d: -scores[d])


def minmax(lists: Sequence[Ranking], depth: int) -> list[str]:
    """Each list's scores scaled to 0..1 within the list, summed (missing: 0)."""
    scores: dict[str, float] = {}
    for ranking in lists:
        part = ranking[:depth]
        if part:
            hi, lo = part[0][1], part[-1][1]
            for doc, value in part:
                scores[doc] = scores.get(doc, 0.0) + ((value - lo) / (hi - lo) if hi > lo else 1)
    return sorted(scores, key=lambda d: -scores[d])


def dbsf(lists: Sequence[Ranking], depth: int) -> list[str]:
    """Distribution-based score fusion: scaled to mean +- 3 standard deviations, summed."""
    scores: dict[str, float] = {}
    for ranking in lists:
        part = ranking[:depth]
        if part:
            values = [v for _, v in part]
            mean, sd = statistics.fmean(values), statistics.pstdev(values) or 1.0
            for doc, value in part:
                scores[doc] = scores.get(doc, 0.0) + (value - mean + 3 * sd) / (6 * sd)
    return sorted(scores, key=lambda d: -scores[d])


def interleave(lists: Sequence[Ranking], depth: int) -> list[str]:
    out: dict[str, None] = {}
    for pair in zip(*(r[:depth] for r in lists), strict=False):
        for doc, _ in pair:
            out.setdefault(doc, None)
    return list(out)


def zscore(lists: Sequence[Ranking], depth: int) -> list[str]:
    return [f.id for f in zscore_fusion([r[:depth] for r in lists])]


def completed(lists: Sequence[Ranking], depth: int, pool: int = DEPTH) -> list[str]:
    """z-score fusion over the union of the top `depth`s with every candidate's score read from
    the `pool`-deep lists instead of imputed: a candidate absent from a list's top 20 gets its
    real score there (rank 21-100), or that list's last score when the list is full (an upper
    bound), or 0 when the list is shorter (the item matched nothing)."""
    pool_ids = dict.fromkeys(doc for r in lists for doc, _ in r[:depth])
    filled = []
    for ranking in lists:
        scores = dict(ranking[:pool])
        floor = ranking[pool - 1][1] if len(ranking) >= pool else 0.0
        filled.append(sorted(((doc, scores.get(doc, floor)) for doc in pool_ids),
                             key=lambda p: -p[1]))
    return [f.id for f in zscore_fusion(filled)]


VARIANTS: dict[str, Callable[[Ranking, Ranking], list[str]]] = {
    "dense (API)": lambda d, t: [doc for doc, _ in d],
    "text (API)": lambda d, t: [doc for doc, _ in t],
    "RRF k=60 of the top 10s (= RRF of API lists)": lambda d, t: rrf([d, t], 10),
    "z-score, top 20 (shipped)": lambda d, t: zscore([d, t], 20),
    "z-score, top 10": lambda d, t: zscore([d, t], 10),
    "z-score, top 50": lambda d, t: zscore([d, t], 50),
    "z-score, top 100": lambda d, t: zscore([d, t], 100),
    "RRF k=60, top 20": lambda d, t: rrf([d, t], 20),
    "RRF k=60, top 50": lambda d, t: rrf([d, t], 50),
    "RRF k=10, top 50": lambda d, t: rrf([d, t], 50, 10),
    "RRF k=2, top 50": lambda d, t: rrf([d, t], 50, 2),
    "min-max sum, top 20": lambda d, t: minmax([d, t], 20),
    "min-max sum, top 50": lambda d, t: minmax([d, t], 50),
    "DBSF, top 20": lambda d, t: dbsf([d, t], 20),
    "DBSF, top 50": lambda d, t: dbsf([d, t], 50),
    "interleave, top 20": lambda d, t: interleave([d, t], 20),
    "z-score, top 20 union, scores completed to 100": lambda d, t: completed([d, t], 20),
    "z-score, top 10 union, scores completed to 100": lambda d, t: completed([d, t], 10),
}


def thread_of(c: Chunk) -> tuple[str, str] | None:
    """What a turn's predecessor is looked up in: a dialogue session (the client's turns of one
    date) or an assistant-set conversation; None for items of no conversation (emails...)."""
    if c.metadata.get("session") is not None:
        return c.client, str(c.occurred_at)
    conv = c.metadata.get("conversation_id")
    return (c.client, str(conv)) if conv else None


def embed_texts(chunks: list[Chunk], context: bool) -> list[str]:
    if not context:
        return [c.embed_text for c in chunks]
    # The turn before, in the same conversation, as context.
    texts, last = [], {}
    for c in chunks:
        thread = thread_of(c)
        before = last.get(thread) if thread else None
        texts.append(f"{before}\n{c.text}" if before else c.embed_text)
        if thread:
            last[thread] = c.text
    return texts


def best_of(a: Ranking, b: Ranking) -> Ranking:
    """One dense ranking from two vectors per item (alone, in context): each item's better
    cosine, as multi-vector retrieval scores an item by its best representation."""
    best: dict[str, float] = {}
    for doc, score in (*a, *b):
        best[doc] = max(score, best.get(doc, score))
    return sorted(best.items(), key=lambda p: -p[1])


SECOND_VECTOR: dict[str, Callable[[Ranking, Ranking, Ranking, Ranking], list[str]]] = {
    "one passage: best of the two cosines, z-score top 20":
        lambda d, t, c, m: zscore([best_of(d, c), t], 20),
    "one passage: z-score top 20 of dense, text and contextual":
        lambda d, t, c, m: zscore([d, t, c], 20),
    "one passage: RRF k=60 of the top 10s of dense, text and contextual":
        lambda d, t, c, m: rrf([d, t, c], 10),
    "one passage: contextual alone": lambda d, t, c, m: [doc for doc, _ in c],
    "control: z-score top 20 of dense, text and dense again":
        lambda d, t, c, m: zscore([d, t, d], 20),
    "mean vector (shipped): z-score top 20 of dense, text and contextual":
        lambda d, t, c, m: zscore([d, t, m], 20),
    "mean vector: contextual alone": lambda d, t, c, m: [doc for doc, _ in m],
}

Row = tuple[ev.Question, Ranking, Ranking, list[str], bool, Ranking, Ranking]


async def lists_for(data: ev.EvalSet, url: str, embedder: OnnxMiniLMEmbedder, qdrop: bool,
                    context: bool, second: bool) -> list[Row]:
    store = RedisVectorStore(redis.Redis.from_url(url), f"var{data.name[:4]}")
    info = await store.ensure(embedder.name, embedder.dim)
    chunks = [c for e in data.events for c in chunks_from_event(e, 800, 120)]
    texts = embed_texts(chunks, context and data.name == "dialogues")
    await store.upsert(chunks, await embedder.embed_passages(texts))
    ctx_store = RedisVectorStore(redis.Redis.from_url(url), f"ctx{data.name[:4]}")
    ctx_info = await ctx_store.ensure(embedder.name, embedder.dim)
    mean_store = RedisVectorStore(redis.Redis.from_url(url), f"mean{data.name[:4]}")
    mean_info = await mean_store.ensure(embedder.name, embedder.dim)
    if second:
        await ctx_store.upsert(chunks, await embedder.embed_passages(embed_texts(chunks, True)))
        await mean_store.upsert(chunks, *await embed_chunks(embedder, chunks))
    baseline = ev.Bm25Baseline(data.events)
    clients = sorted({q.client for q in data.questions})
    half_a = set(clients[:len(clients) // 2])
    rows: list[Row] = []
    for q in data.questions:
        words = q.text
        if qdrop:
            words = " ".join(w for w in tokens(q.text) if w not in QUESTION_WORDS)
        vector = await embedder.embed_query(q.text)
        dense, lexical, _ = await store._ranked(Scope(data.org, q.client), vector, words, DEPTH)
        contextual: Ranking = []
        mean: Ranking = []
        if second:
            ctx, _, _ = await ctx_store._ranked(Scope(data.org, q.client), vector, None, DEPTH)
            contextual = [(c.id, c.score) for c in ctx]
            plain, _, in_context = await mean_store._ranked(Scope(data.org, q.client), vector,
                                                            None, DEPTH)
            mean = [(c.id, c.score) for c in contextual_ranking(plain, in_context, DEPTH)]
        rows.append((q, [(c.id, c.score) for c in dense], [(c.id, c.score) for c in lexical],
                     baseline.rank(q.client, q.text), q.client in half_a, contextual, mean))
    for s, i in ((store, info), (ctx_store, ctx_info), (mean_store, mean_info)):
        await s.drop(i)
        await s.close()
    return rows


def cells(rows: list[Row], rank: Callable[[Row], list[str]]) -> list[str]:
    parts: dict[str, list[tuple[float, float, float]]] = {"all": [], "A": [], "B": []}
    for row in rows:
        m = ev.metrics(rank(row), row[0].answers)
        parts["all"].append(m)
        parts["A" if row[4] else "B"].append(m)
    return [f"{statistics.fmean(m[1] for m in ms):.3f} / {statistics.fmean(m[2] for m in ms):.3f}"
            for ms in parts.values()]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--qdrop", action="store_true")
    parser.add_argument("--context", action="store_true")
    parser.add_argument("--second-vector", action="store_true")
    args = parser.parse_args()
    server = start_valkey(Path(tempfile.mkdtemp()), persist=False)
    embedder = OnnxMiniLMEmbedder()
    try:
        sets = {s.name: await lists_for(await ev.as_uploaded(s, server.url), server.url, embedder,
                                        args.qdrop, args.context, args.second_vector)
                for s in (ev.assistant_set(), ev.dialogue_set())}
    finally:
        server.stop()
    print(f"\nminilm-onnx, question words dropped: {args.qdrop}, contextual turns: "
          f"{args.context}, second vectors: {args.second_vector}; R@10 / MRR\n")
    print("| variant | " + " | ".join(f"{name} {part}" for name in sets
                                      for part in ("all", "A", "B")) + " |")
    print("|---|" + "---|" * 3 * len(sets))
    print("| BM25 rank_bm25 | " + " | ".join(
        c for rows in sets.values() for c in cells(rows, lambda r: r[3])) + " |")
    for name, fuse in VARIANTS.items():
        print(f"| {name} | " + " | ".join(
            c for rows in sets.values()
            for c in cells(rows, lambda r, f=fuse: ev.items(f(r[1], r[2])))) + " |")
    for name, fuse3 in SECOND_VECTOR.items() if args.second_vector else ():
        print(f"| {name} | " + " | ".join(
            c for rows in sets.values()
            for c in cells(rows, lambda r, f=fuse3: ev.items(f(r[1], r[2], r[5], r[6])))) + " |")


if __name__ == "__main__":
    asyncio.run(main())
