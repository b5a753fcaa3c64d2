"""Query words for the keyword side of a search, and how much of a query a text covers."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9]+")
# Words that carry no meaning for recall; a query made only of these must not turn into an
# empty (match-everything) expression.
_STOP_WORDS = """a an and are as at be but by did do does for from had has have he her his how i
if in into is it its me my of on or our she so that the their them then there these they this to
was we were what when where which who why will with you your about any can"""
STOP = frozenset(_STOP_WORDS.split())


def _stem(word: str) -> str:
    # Crude suffix folding, enough to match "flights"/"flight" when measuring coverage; the
    # engine does real stemming for the ranking itself.
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def query_terms(text: str, limit: int = 32) -> list[str]:
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if len(word) > 1 and word not in STOP:
            seen.setdefault(word, None)
    return list(seen)[:limit]


def coverage(terms: list[str], text: str) -> float:
    """Share of the query's terms that occur in `text` (0..1)."""
    if not terms:
        return 0.0
    words = {_stem(w) for w in _WORD.findall(text.lower())}
    return sum(_stem(t) in words for t in terms) / len(terms)
