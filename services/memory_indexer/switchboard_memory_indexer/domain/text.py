"""Query words for the keyword side of a search, tokenized the way the engine tokenizes.

RediSearch splits text on whitespace and the ASCII punctuation below (its DEFAULT_DELIMITERS;
`_` is not one) and keeps every other character, accented or not, inside a word, lowercased.
A client-side tokenizer that differs (the old `[A-Za-z0-9]+` turned "Müller" into "ller")
asks the engine for words no document holds, so the query words are cut with the engine's own
rule. Stop words are the engine's default list, and the index is created with exactly this list
(`FT.CREATE ... STOPWORDS`), so what the client drops and what the engine ignores are one set
whatever the engine version's default is. A query that reduces to no word yields no terms, and
the store then runs no keyword query at all: an empty expression would match every item."""

from __future__ import annotations

import re

DELIMITERS = "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~"
"""RediSearch's default separators (src/delimiters.h), besides whitespace."""
_SPLIT = re.compile(r"[\s" + re.escape(DELIMITERS) + r"]+")

STOP_WORDS = ("a", "is", "the", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if",
              "in", "into", "it", "no", "not", "of", "on", "or", "such", "that", "their", "then",
              "there", "these", "they", "this", "to", "was", "will", "with")
"""RediSearch's default stop-word list, verbatim; given to FT.CREATE so the engine uses it."""
STOP = frozenset(STOP_WORDS)


def tokens(text: str) -> list[str]:
    """The words the engine indexes for `text`, in order (stop words included)."""
    return [t for t in _SPLIT.split(text.lower()) if t]


def query_terms(text: str, limit: int = 32) -> list[str]:
    """Distinct non-stop words of a query, at most `limit` (a bound on the query's cost).
    One-letter words are kept: the engine indexes them, and "B" may be a building or a grade."""
    seen: dict[str, None] = {}
    for word in tokens(text):
        if word not in STOP:
            seen.setdefault(word, None)
    return list(seen)[:limit]
