"""The embedded local models via llama-cpp-python: SmolLM2 for streaming and queueing (fast),
Qwen2.5-Coder-1.5B (the default) for the two-step tool call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from switchboard_common.tools import model_tools
from switchboard_llm_stream.adapters.local import LocalProvider
from switchboard_llm_stream.adapters.model_files import default_models_dir
from switchboard_llm_stream.domain.local_models import MODELS
from switchboard_llm_stream.domain.provider import Queued
from tests.unit.llm_stream.conftest import model_request

# Generous: an idle 2-core machine needs seconds, a busy one minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def provider(key: str = "smollm2-135m", cap: int = 16) -> LocalProvider:
    return LocalProvider(MODELS[key], path=None, models_dir=default_models_dir(),  # type: ignore[index]
                         n_ctx=2048, n_threads=2, max_tokens_cap=cap, queue_notice_s=0.2)


async def test_local_model_streams_an_answer_and_queues_the_next() -> None:
    local = provider()
    await local.start()
    try:
        pieces: list[str] = []
        async with local.stream(model_request("Say hello.", max_tokens=8)) as stream:
            async for piece in stream:
                assert isinstance(piece, str)
                pieces.append(piece)
        done = stream.completion
        assert len(pieces) >= 2 and done.text.strip()
        assert "smollm2" in done.model.lower()
        assert done.usage.output_tokens == len(pieces) <= 8
        assert done.usage.input_tokens > 0
        assert done.stop_reason in ("end_turn", "max_tokens", "repetition")

        # While one generation runs, the next request hears its queue position first.
        async def collect(text: str) -> list[object]:
            async with local.stream(model_request(text, max_tokens=12)) as s:
                return [p async for p in s]

        first = asyncio.create_task(collect("Count to fifty."))
        await asyncio.sleep(0)
        second = await collect("Say hi.")
        assert isinstance(second[0], Queued) and second[0].position == 1
        assert any(isinstance(p, str) for p in second)
        assert not any(isinstance(p, Queued) for p in await first)

        # An abandoned generation frees the model for the next one.
        async with local.stream(model_request("Count to fifty.", max_tokens=64)) as stream:
            async for _ in stream:
                break
        async with local.stream(model_request("Say hi.", max_tokens=4)) as stream:
            assert [p async for p in stream]
    finally:
        await local.close()


async def test_default_model_calls_a_tool_with_dated_arguments() -> None:
    """Two steps: the router picks calendar_create, the arguments follow its schema, with the
    date resolved from the prompt's anchors; a question gets a streamed answer instead."""
    local = provider("qwen2.5-coder-1.5b", cap=24)
    await local.start()
    system = ("You are Switchboard, an executive assistant working for Sarah.\n"
              "Now: Monday 2026-11-30 10:15 in Europe/Berlin (UTC+01:00).\n"
              "Dates: today = Monday 2026-11-30; tomorrow = Tuesday 2026-12-01.")
    tools = model_tools(["calendar_create", "calendar_list", "task_add", "email_draft"])
    try:
        request = model_request("Schedule a call with John tomorrow at 9", system=system,
                                tools=tools)
        async with local.stream(request) as stream:
            assert [p async for p in stream] == []
        done = stream.completion
        assert done.stop_reason == "tool_use" and len(done.tool_calls) == 1
        call = done.tool_calls[0]
        assert call.name == "calendar_create"
        assert call.input["start"].startswith("2026-12-01T09:00")
        assert 0 <= call.input["confidence"] <= 1 and call.input["rationale"]
        # The argument step evaluated only its own short instruction: the rest of its prompt
        # (stable block, turn block, the request) was the route step's, reused.
        route, arguments = local.steps
        assert (route.name, arguments.name) == ("route", "arguments")
        assert arguments.evaluated < 40 < 400 < route.tokens

        # Another client's turn reuses the stable block: only its own part is evaluated. Its
        # memory of past bookings and mail is read by the answer, after the route step, which
        # decides on the request alone.
        memory = ('Retrieved memory:\n<data kind="memory">You booked Board prep with '
                  "anna@acme.io for tomorrow at 10:00 and e-mailed her the agenda.</data>")
        question = model_request("Thanks, that is all for now!", tools=tools, max_tokens=12,
                                 system=system.replace("Sarah", "Kenji"), recall=memory)
        async with local.stream(question) as stream:
            text = [p async for p in stream]
        assert text and stream.completion.tool_calls == []
        routed, answered = local.steps
        assert routed.evaluated < route.tokens // 2
        # The memory was evaluated only once the route was decided: had the route step seen
        # it, the answer would have reused it with the rest of the prefix.
        assert answered.evaluated >= 30
    finally:
        await local.close()


def test_models_dir_is_shared_per_machine() -> None:
    assert default_models_dir().parts[-2:] == ("switchboard", "models")
    assert isinstance(default_models_dir(), Path)
