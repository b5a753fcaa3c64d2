"""Does an outbound tool call carry the system prompt (LLM07)? The canary and the start of every
sentence of our fixed instructions (`prompt.LEAK_MARKERS`) are looked for in a call's
arguments, also disguised (split, reversed, ROT13, percent-, hex- or base64-encoded: see
`switchboard_common.disguise`). Pure; called once per proposed tool call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from switchboard_common.disguise import PromptFinder
from switchboard_context.domain.prompt import LEAK_MARKERS


def strings(value: Any) -> Iterator[str]:
    """Every string in a call's arguments (keys too), so no JSON escaping hides anything."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def carries_prompt(arguments: Any, canary: str) -> bool:
    """True when the arguments repeat the canary or our fixed instructions, plainly or
    disguised."""
    return PromptFinder(canary, LEAK_MARKERS).found_in("\n".join(strings(arguments)))
