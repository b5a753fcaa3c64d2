"""Reciprocal rank fusion of the dense and BM25 rankings, and optional recency weighting.

RRF (Cormack et al. 2009) adds `1 / (k + rank)` over the rankings a document appears in. It uses
ranks only, so cosine distances and BM25 scores, which live on unrelated scales, need no
calibration; k=60 is the paper's value and damps the influence of the very top ranks.

Plain RRF lets a keyword ranking built from incidental words (a paraphrased question shares
"time" or "trip" with many items) outvote a confident dense top hit. So each BM25 hit's
contribution is scaled by its query-term coverage (share of the query's terms it contains):
a hit matching the rare identifiers of a question counts fully, an incidental match barely.
Measured on bench/retrieval: plain RRF lost to dense alone on MRR; the coverage weight is
what makes hybrid beat both (docs/memory.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fused:
    id: str
    score: float
    ranks: tuple[int | None, ...]
    """1-based rank in each input ranking, None where absent."""


def rrf(rankings: Sequence[Sequence[str]], k: int = 60,
        weights: Sequence[Mapping[str, float] | None] = ()) -> list[Fused]:
    """`weights[i][doc]` (default 1) scales doc's contribution from ranking i."""
    scores: dict[str, float] = {}
    ranks: dict[str, list[int | None]] = {}
    for i, ranking in enumerate(rankings):
        w = weights[i] if i < len(weights) else None
        for rank, doc in enumerate(ranking, start=1):
            scale = w.get(doc, 1.0) if w is not None else 1.0
            scores[doc] = scores.get(doc, 0.0) + scale / (k + rank)
            ranks.setdefault(doc, [None] * len(rankings))[i] = rank
    fused = [Fused(doc, score, tuple(ranks[doc])) for doc, score in scores.items()]
    # Ties (same fused score) fall back to the best single rank, then the id: deterministic.
    fused.sort(key=lambda f: (-f.score, min(r for r in f.ranks if r is not None), f.id))
    return fused


def recency_factor(age_s: float, half_life_s: float) -> float:
    """1 + 2^(-age/half_life): 2.0 for a brand-new item, 1.5 at one half-life, -> 1.0 when old.
    Multiplying keeps relevance first: recency can at most double a score."""
    return float(1.0 + 2.0 ** (-max(age_s, 0.0) / half_life_s))


def weight_by_recency(fused: list[Fused], occurred_at: dict[str, float], now: float,
                      half_life_s: float) -> list[Fused]:
    weighted = [Fused(f.id, f.score * recency_factor(now - occurred_at.get(f.id, now),
                                                     half_life_s), f.ranks)
                for f in fused]
    weighted.sort(key=lambda f: (-f.score, f.id))
    return weighted
