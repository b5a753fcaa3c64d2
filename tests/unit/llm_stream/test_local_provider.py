"""Smoke test of the embedded local model (SmolLM2-135M-Instruct via llama-cpp-python)."""

from __future__ import annotations

import pytest

from switchboard_llm_stream.adapters.local import MODEL_NAME, LocalProvider
from tests.unit.llm_stream.conftest import model_request

pytestmark = pytest.mark.slow


async def test_local_model_streams_an_answer() -> None:
    provider = LocalProvider(None, n_ctx=1024, n_threads=2, max_tokens_cap=16)
    await provider.start()
    try:
        pieces: list[str] = []
        async with provider.stream(model_request("Say hello.", max_tokens=8)) as stream:
            async for piece in stream:
                pieces.append(piece)
        done = stream.completion
        assert len(pieces) >= 2 and done.text.strip()
        assert done.model == MODEL_NAME and "smollm2" in done.model.lower()
        assert done.usage.output_tokens == len(pieces) <= 8
        assert done.usage.input_tokens > 0 and done.stop_reason in ("end_turn", "max_tokens")

        # An abandoned generation frees the model for the next one.
        async with provider.stream(model_request("Count to fifty.", max_tokens=64)) as stream:
            async for _ in stream:
                break
        async with provider.stream(model_request("Say hi.", max_tokens=4)) as stream:
            assert [p async for p in stream]
    finally:
        await provider.close()
