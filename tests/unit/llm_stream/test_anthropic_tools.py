"""Tool use through the real `anthropic` SDK against the fake: tool definitions go out,
tool_use blocks (input_json_delta pieces) come back as tool calls, and content blocks
(tool_use, tool_result) are sent in the next call's messages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchboard_common.model import (
    ChatMessage,
    TextBlock,
    ToolDef,
    ToolResultBlock,
    ToolUseBlock,
)
from switchboard_common.tools import model_tools
from switchboard_llm_stream.adapters.anthropic import AnthropicProvider
from switchboard_llm_stream.domain.provider import Completion
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.unit.llm_stream.conftest import model_request


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider("sk-test", fake.base_url, "claude-test", timeout_s=5,
                          max_tokens_cap=100)
    yield p
    await p.close()


async def run(provider: AnthropicProvider, messages: list[ChatMessage],
              tools: list[ToolDef]) -> tuple[list[str], Completion]:
    request = model_request("x").model_copy(update={"messages": messages, "tools": tools})
    pieces: list[str] = []
    async with provider.stream(request) as stream:
        async for piece in stream:
            pieces.append(piece)
    return pieces, stream.completion


async def test_tool_calls_are_parsed_and_results_sent_back(provider: AnthropicProvider,
                                                           fake: FakeAnthropic) -> None:
    event = {"title": "Board prep", "start": "2031-05-06T09:00:00+00:00", "confidence": 0.9,
             "rationale": "asked for it"}
    directive = fake.script("two-calls", [[
        {"text": "Booking it."},
        {"tool": "calendar_create", "input": event, "id": "toolu_a"},
        {"tool": "task_add", "input": {"title": "Prepare deck", "confidence": 0.8,
                                       "rationale": "follow-up"}, "id": "toolu_b"},
    ]])
    tools = model_tools(["calendar_create", "task_add"])
    first = [ChatMessage(role="user", content=f"{directive} book board prep")]
    pieces, done = await run(provider, first, tools)
    assert "".join(pieces) == "Booking it." and done.stop_reason == "tool_use"
    assert [(c.id, c.name) for c in done.tool_calls] == [("toolu_a", "calendar_create"),
                                                         ("toolu_b", "task_add")]
    assert done.tool_calls[0].input == event
    sent = fake.last_request
    assert [t["name"] for t in sent["tools"]] == ["calendar_create", "task_add"]
    assert "confidence" in sent["tools"][0]["input_schema"]["required"]

    second = [*first,
              ChatMessage(role="assistant", content=[
                  TextBlock(text="Booking it."),
                  *(ToolUseBlock(id=c.id, name=c.name, input=c.input) for c in done.tool_calls)]),
              ChatMessage(role="user", content=[
                  ToolResultBlock(tool_use_id="toolu_a", content='{"status": "executed"}'),
                  ToolResultBlock(tool_use_id="toolu_b", content="failed", is_error=True)])]
    pieces, done = await run(provider, second, tools)
    assert done.stop_reason == "end_turn" and done.tool_calls == []
    assert "".join(pieces) == "Done."
    blocks = fake.last_request["messages"][2]["content"]
    assert blocks[1] == {"type": "tool_result", "tool_use_id": "toolu_b", "content": "failed",
                         "is_error": True}


async def test_plain_requests_send_no_tools(provider: AnthropicProvider,
                                            fake: FakeAnthropic) -> None:
    _, done = await run(provider, [ChatMessage(role="user", content="hello")], [])
    assert "tools" not in fake.last_request and done.tool_calls == []
