"""Token counting without a network-fetched tokenizer.

`count` estimates tokens as ceil(characters / 3.6) + 4 per message for role framing.
Anthropic documents roughly 3.5 characters per token for English prose; bench/prompts.py
measures this estimate against the SmolLM2 tokenizer on the project's request set and
docs/performance.md records the error. Budgets built on it keep a safety margin."""

from __future__ import annotations

import math
from collections.abc import Iterable

from switchboard_common.model import ChatMessage

CHARS_PER_TOKEN = 3.6
MESSAGE_OVERHEAD = 4


def count(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def count_messages(messages: Iterable[ChatMessage]) -> int:
    return sum(count(m.text) + MESSAGE_OVERHEAD for m in messages)
