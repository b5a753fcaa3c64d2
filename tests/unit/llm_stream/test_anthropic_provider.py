"""The Anthropic adapter through the real `anthropic` SDK against a local server speaking the
Messages API's SSE format: text, usage, prompt caching and every failure mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchboard_cli.embedded import free_port
from switchboard_common.errors import ErrorCode
from switchboard_common.model import ChatMessage
from switchboard_llm_stream.adapters.anthropic import AnthropicProvider
from switchboard_llm_stream.domain.errors import ProviderError
from switchboard_llm_stream.domain.provider import Completion
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.unit.llm_stream.conftest import model_request


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider("sk-test", fake.base_url, "claude-test-default", timeout_s=5,
                          max_tokens_cap=100)
    yield p
    await p.close()


async def collect(provider: AnthropicProvider, text: str, **kw: object
                  ) -> tuple[list[str], Completion]:
    pieces: list[str] = []
    async with provider.stream(model_request(text, **kw)) as stream:
        async for piece in stream:
            pieces.append(piece)
    return pieces, stream.completion


async def test_streams_text_with_usage_and_caches_the_system_prompt(
        provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    pieces, done = await collect(provider, "[[fake tokens=6]] plan my week please",
                                 system="You are the stable prefix.", max_tokens=5000,
                                 context="Summary: the client likes tea.")
    assert len(pieces) == 6 and done.text == "".join(pieces) == "Echo: plan my week please Echo:"
    assert done.stop_reason == "end_turn" and done.model == "claude-test-default"
    assert done.usage.output_tokens == 6
    body = fake.last_request
    assert body["stream"] is True and body["max_tokens"] == 100  # capped
    assert body["system"][0] == {"type": "text", "text": "You are the stable prefix.",
                                 "cache_control": {"type": "ephemeral"}}
    assert body["system"][1] == {"type": "text", "text": "Summary: the client likes tea."}
    first = done.usage.cache_read_input_tokens + done.usage.cache_creation_input_tokens
    _, again = await collect(provider, "[[fake tokens=2]] and again",
                             system="You are the stable prefix.")
    assert first == again.usage.cache_read_input_tokens == 5  # served from the prompt cache
    assert again.usage.input_tokens > 0


async def test_request_model_and_history_are_sent(provider: AnthropicProvider,
                                                  fake: FakeAnthropic) -> None:
    request = model_request("third", model="claude-haiku-test").model_copy(update={
        "messages": [ChatMessage(role="user", content="first"),
                     ChatMessage(role="assistant", content="second"),
                     ChatMessage(role="user", content="third")]})
    async with provider.stream(request) as stream:
        text = "".join([p async for p in stream])
    assert text == "Echo: third" and stream.completion.model == "claude-haiku-test"
    assert [m["role"] for m in fake.last_request["messages"]] == ["user", "assistant", "user"]


@pytest.mark.parametrize(("status", "code", "retryable"), [
    (429, ErrorCode.PROVIDER_RATE_LIMITED, True),
    (529, ErrorCode.PROVIDER_OVERLOADED, True),
    (500, ErrorCode.PROVIDER_UNAVAILABLE, True),
    (400, ErrorCode.PROVIDER_BAD_REQUEST, False),
    (401, ErrorCode.PROVIDER_AUTH, False),
])
async def test_http_errors_are_typed_and_never_retried_by_the_sdk(
        provider: AnthropicProvider, fake: FakeAnthropic, status: int, code: ErrorCode,
        retryable: bool) -> None:
    before = fake.request_count
    with pytest.raises(ProviderError) as caught:
        await collect(provider, f"[[fake status={status}]] hi")
    failure = caught.value.failure
    assert (failure.code, failure.retryable, failure.status) == (code, retryable, status)
    assert "request-id req_fake_" in failure.message
    assert fake.request_count - before == 1  # max_retries=0: JetStream owns retries


async def test_mid_stream_error_event_after_partial_text(provider: AnthropicProvider) -> None:
    pieces: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async with provider.stream(model_request(
                "[[fake tokens=10 error_event=overloaded_error after=3]] go")) as stream:
            async for piece in stream:
                pieces.append(piece)
    assert len(pieces) == 3
    assert caught.value.failure.code is ErrorCode.PROVIDER_OVERLOADED
    assert caught.value.failure.retryable and caught.value.failure.status is None


async def test_a_silent_provider_times_out(fake: FakeAnthropic) -> None:
    p = AnthropicProvider("sk-test", fake.base_url, "m", timeout_s=0.3, max_tokens_cap=100)
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(p, "[[fake hang]] are you there")
        assert caught.value.failure.code is ErrorCode.PROVIDER_TIMEOUT
        with pytest.raises(ProviderError) as caught:
            await collect(p, "[[fake tokens=5 hang_after=2]] stall midway")
        assert caught.value.failure.code is ErrorCode.PROVIDER_TIMEOUT
    finally:
        await p.close()


async def test_connection_refused_is_unavailable() -> None:
    p = AnthropicProvider("sk-test", f"http://127.0.0.1:{free_port()}", "m", timeout_s=2,
                          max_tokens_cap=100)
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(p, "anyone?")
        assert caught.value.failure.code is ErrorCode.PROVIDER_UNAVAILABLE
        assert caught.value.failure.retryable
    finally:
        await p.close()
