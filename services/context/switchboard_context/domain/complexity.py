"""Request complexity: decides between a lite and a full prompt (and the cheaper or stronger
model). Deterministic and explainable: each feature adds a documented weight.

| feature          | weight          | signal                                          |
|------------------|-----------------|-------------------------------------------------|
| long             | +0.5 / +1 / +2  | more than 12 / 30 / 60 words                    |
| extra_questions  | +0.5 each       | question marks beyond the first                 |
| sentences        | +1              | more than two sentences                         |
| memory_reference | +2              | discussed, last time, remember, did we, ...     |
| analysis         | +1.5 (+0.5 per further distinct term, max 2.5) | summarise, compare, why ... |
| multi_step       | +1              | then, after that, also, as well as, `;`         |
| simple_action    | -1              | imperative of <= 12 words: schedule, book, add  |

`complex` when the score is >= 2, else `simple`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

_WORD = re.compile(r"\b[\w'-]+\b")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_MEMORY = re.compile(
    r"\b(discuss(ed)?|talked|mentioned|last (time|week|month|meeting|call)|earlier|previous(ly)?"
    r"|remember|recap|history|follow[- ]up on|we (agreed|decided|said)|did we|have we"
    r"|what did \w+ (say|decide|agree|discuss|want))\b", re.I)
_ANALYSIS = re.compile(
    r"\b(summari[sz]e|summary|compare|comparison|analy[sz]e|analysis|explain|why|pros and cons"
    r"|strategy|plan|review|recommend|brainstorm|evaluate|prioriti[sz]e|draft (a|an) (proposal"
    r"|memo|report|plan)|proposal|estimate|outline|difference|assess(ment)?|risks|briefing)\b",
    re.I)
_MULTI = re.compile(r"\b(then|after that|as well as|also|afterwards)\b|;", re.I)
_ACTION = re.compile(
    r"^\s*(please\s+)?(schedule|book|add|remind|set|cancel|move|reschedule|send|email|call"
    r"|create|delete|mark|put|block)\b", re.I)

COMPLEX_AT = 2.0


@dataclass(frozen=True)
class Complexity:
    level: Literal["simple", "complex"]
    score: float
    features: dict[str, float] = field(default_factory=dict)


def estimate(text: str) -> Complexity:
    words = len(_WORD.findall(text))
    features: dict[str, float] = {}
    if words > 60:
        features["long"] = 2.0
    elif words > 30:
        features["long"] = 1.0
    elif words > 12:
        features["long"] = 0.5
    if (questions := text.count("?")) > 1:
        features["extra_questions"] = 0.5 * (questions - 1)
    if len(_SENTENCE_END.findall(text.strip())) > 2:
        features["sentences"] = 1.0
    if _MEMORY.search(text):
        features["memory_reference"] = 2.0
    if analysis := {m.group(0).lower() for m in _ANALYSIS.finditer(text)}:
        features["analysis"] = min(2.5, 1.5 + 0.5 * (len(analysis) - 1))
    if _MULTI.search(text):
        features["multi_step"] = 1.0
    if _ACTION.search(text) and words <= 12:
        features["simple_action"] = -1.0
    score = sum(features.values())
    return Complexity("complex" if score >= COMPLEX_AT else "simple", score, features)
