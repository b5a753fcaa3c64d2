"""Estimated cost of a turn from its token usage (USD per million tokens, list prices).
Unknown models cost nothing rather than guessing; the local model is free."""

from __future__ import annotations

from switchboard_common.turns import Usage

# model-name prefix -> (input, output, cache read, cache write) USD per million tokens
PRICES: dict[str, tuple[float, float, float, float]] = {
    "claude-opus-4-1": (15.0, 75.0, 1.5, 18.75),
    "claude-opus-4-0": (15.0, 75.0, 1.5, 18.75),
    "claude-opus-4": (5.0, 25.0, 0.5, 6.25),
    "claude-sonnet-4": (3.0, 15.0, 0.3, 3.75),
    "claude-3-7-sonnet": (3.0, 15.0, 0.3, 3.75),
    "claude-haiku-4": (1.0, 5.0, 0.1, 1.25),
    "claude-3-5-haiku": (0.8, 4.0, 0.08, 1.0),
}


def cost_usd(model: str, usage: Usage) -> float:
    price = next((p for prefix, p in PRICES.items() if model.startswith(prefix)), None)
    if price is None:
        return 0.0
    inp, out, read, write = price
    return (usage.input_tokens * inp + usage.output_tokens * out
            + usage.cache_read_input_tokens * read
            + usage.cache_creation_input_tokens * write) / 1_000_000
