"""Fusion of the dense and BM25 rankings (score-normalised), then weights by kind and recency.

Each ranking's scores (cosine similarity, BM25) are turned into z-scores within that ranking
for this query, and a candidate's fused score is the sum of its two z-scores; a candidate
missing from a ranking gets that ranking's lowest z-score (it ranked at best below the last
one returned). Normalising per query puts the two unrelated scales on one footing without a
weight to tune, and, unlike rank-only RRF, keeps how far a top hit stands out from the rest:
a confident dense hit is not outvoted by items that sit in the middle of both lists.

Measured on both eval sets (docs/memory.md): RRF over 50-deep lists let such middling items
win (recall@10 0.310 vs 0.488 for RRF of the top 10s on the dialogue set); z-score fusion of
the top 20s matched the best RRF on recall@10 on both sets and beat it on MRR (0.903 vs 0.835,
0.371 vs 0.316). No parameter was tuned to either set; an earlier coverage-weighted RRF tuned
to the assistant set lost to plain BM25 on conversational data.

Fused scores are shifted so the weakest candidate of the query scores 1 (z-sums span a few
units above it): the kind and recency weights multiply them, which needs positive scores, and
the weakest candidate must still be able to move up."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fused:
    id: str
    score: float
    ranks: tuple[int | None, ...]
    """1-based rank in each input ranking, None where absent."""


def _zscores(ranking: Sequence[tuple[str, float]]) -> dict[str, float]:
    if not ranking:
        return {}
    values = [score for _, score in ranking]
    mean = statistics.fmean(values)
    spread = statistics.pstdev(values) or 1.0
    return {doc: (score - mean) / spread for doc, score in ranking}


def zscore_fusion(rankings: Sequence[Sequence[tuple[str, float]]]) -> list[Fused]:
    """`rankings`: each a list of (doc, score), best first."""
    zs = [_zscores(r) for r in rankings]
    floors = [min(z.values(), default=0.0) for z in zs]
    ranks: dict[str, list[int | None]] = {}
    for i, ranking in enumerate(rankings):
        for rank, (doc, _) in enumerate(ranking, start=1):
            ranks.setdefault(doc, [None] * len(rankings))[i] = rank
    raw = {doc: sum(z.get(doc, floor) for z, floor in zip(zs, floors, strict=True))
           for doc in ranks}
    low = min(raw.values(), default=0.0)
    fused = [Fused(doc, score - low + 1.0, tuple(ranks[doc])) for doc, score in raw.items()]
    fused.sort(key=_order)
    return fused


def _order(f: Fused) -> tuple[float, int, str]:
    # Ties (same fused score) fall back to the best single rank, then the id: deterministic.
    return (-f.score, min(r for r in f.ranks if r is not None), f.id)


def weight_by_kind(fused: list[Fused], kinds: Mapping[str, str],
                   weights: Mapping[str, float]) -> list[Fused]:
    """Scale each score by its item kind's weight, and rank every kind weighed below 1 (the
    assistant's own answers) after all the others, as if indexed apart: a scaled score alone
    did not hold (a wrong answer that repeats the question's words outscored, halved, the fact
    it should have come from), so a wrong answer never outranks the facts."""
    def weight(f: Fused) -> float:
        return weights.get(kinds.get(f.id, ""), 1.0)

    weighted = [Fused(f.id, f.score * weight(f), f.ranks) for f in fused]
    weighted.sort(key=lambda f: (weight(f) < 1.0, *_order(f)))
    return weighted


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
