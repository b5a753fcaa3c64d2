"""Claude through the official `anthropic` SDK's streaming Messages API.

- The SDK never retries (`max_retries=0`): JetStream redelivery is the one retry layer, so a
  failure is never streamed twice by stacked retries.
- `timeout` bounds connect and every read, so a provider that goes silent fails as
  `provider_timeout` instead of hanging the turn.
- The system prompt is one text block marked `cache_control: ephemeral`: it is the stable
  prefix of every turn of a (user, client), so Anthropic serves it from the prompt cache.
- We iterate the stream's events as the SDK decodes them from JSON, untyped: the request
  goes through the SDK's documented `client.post` for any endpoint (`cast_to=object`, its
  `AsyncStream`), so the SDK still builds the request, authenticates, applies the timeout,
  decodes the SSE stream and raises its typed errors, `error` events included. Not the
  `messages.stream()` helper: it rebuilds a full message snapshot on every event, which
  halved the relay rate; and not `messages.create(stream=True)`: it builds a typed model of
  every event (the union's discriminator, then the nested delta), a third of the CPU of each
  streamed token (docs/performance.md). We need only the text, the tool calls, the stop
  reason and the usage, accumulated here. The request body is encoded here, once
  (pydantic-core), and handed to the SDK as the request's content.
- Tools: `request.tools` are sent as Anthropic tool definitions; `tool_use` content blocks are
  assembled from their `input_json_delta` pieces (parsed when the block stops) into
  `Completion.tool_calls`. Content blocks in messages (tool_use, tool_result) go out as is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import httpx2
from anthropic.types.assistant_message_param import AssistantMessageParam
from anthropic.types.message_param import MessageParam
from anthropic.types.user_message_param import UserMessageParam
from pydantic_core import to_json

from switchboard_common.model import ChatMessage, ModelRequest, ProviderFailure, ToolCall
from switchboard_common.turns import Usage
from switchboard_llm_stream.domain import errors
from switchboard_llm_stream.domain.errors import ProviderError
from switchboard_llm_stream.domain.provider import Completion


def failure_of(exc: anthropic.APIError | httpx2.TransportError) -> ProviderFailure:
    """Map an SDK exception to our typed failure. Timeouts come first (the SDK's timeout
    error is a connection error subclass). Transport errors while reading the event stream
    reach us unwrapped from the HTTP client (the SDK wraps only the request itself)."""
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return errors.timeout("anthropic: request timed out")
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return errors.unreachable(f"anthropic: connection failed ({type(exc).__name__})")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        kind = exc.type or "unknown"
        where = f"status {status}" if status >= 400 else "stream error event"
        return errors.from_status(status, exc.type,
                                  f"anthropic {where} {kind} (request-id {exc.request_id})")
    return errors.from_status(None, None, f"anthropic: {type(exc).__name__}")


class _AnthropicText:
    """Iterates text pieces and fills `completion` from the events around them (each a dict
    as the Messages API streams it)."""

    def __init__(self, events: AsyncIterator[Any], completion: Completion) -> None:
        self._events = events
        self.completion = completion

    async def __aiter__(self) -> AsyncIterator[str]:
        done = self.completion
        parts = done.text_parts
        usage: dict[str, int] = {}
        tools: dict[int, tuple[str, str, list[str]]] = {}  # index -> (id, name, json pieces)
        async for event in self._events:
            if not isinstance(event, dict):
                continue
            kind = event.get("type")
            if kind == "content_block_delta":  # the hot path, first
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    text = delta.get("text") or ""
                    parts.append(text)
                    yield text
                elif delta.get("type") == "input_json_delta" and event.get("index") in tools:
                    tools[event["index"]][2].append(delta.get("partial_json") or "")
            elif kind == "content_block_start":
                block = event.get("content_block") or {}
                if block.get("type") == "tool_use":
                    tools[event.get("index", -1)] = (str(block.get("id", "")),
                                                     str(block.get("name", "")), [])
            elif kind == "content_block_stop" and event.get("index") in tools:
                done.tool_calls.append(_tool_call(*tools.pop(event["index"])))
            elif kind == "message_start":
                message = event.get("message") or {}
                done.model = message.get("model") or done.model
                usage.update(_usage_fields(message.get("usage")))
            elif kind == "message_delta":
                done.stop_reason = (event.get("delta") or {}).get("stop_reason")
                usage.update(_usage_fields(event.get("usage")))
        done.usage = Usage(**usage)


def _usage_fields(usage: Any) -> dict[str, int]:
    # message_delta carries the final output count (and may repeat the input counts).
    if not isinstance(usage, dict):
        return {}
    names = ("input_tokens", "output_tokens", "cache_read_input_tokens",
             "cache_creation_input_tokens")
    return {n: v for n in names if isinstance(v := usage.get(n), int)}


def _tool_call(call_id: str, name: str, pieces: list[str]) -> ToolCall:
    raw = "".join(pieces).strip()
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        value = {}  # unparseable input: validated (and refused) downstream, like any bad input
    return ToolCall(id=call_id, name=name, input=value if isinstance(value, dict) else {})


def _message(m: ChatMessage) -> MessageParam:
    content: Any = (m.content if isinstance(m.content, str)
                    else [b.model_dump() for b in m.content])
    if m.role == "user":
        return UserMessageParam(role="user", content=content)
    return AssistantMessageParam(role="assistant", content=content)


_Events = anthropic.AsyncStream[object]


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, api_key: str, base_url: str, default_model: str, timeout_s: float,
                 max_tokens_cap: int) -> None:
        # No SDK spans: `observe.model_call` already opens the call's gen_ai CLIENT span (with
        # the turn, the purpose and the usage), and the SDK's own span, a second one per call,
        # watched every streamed event (~5% of llm_stream's CPU under load).
        # HTTP over aiohttp (the SDK's `aiohttp` extra) instead of its default httpx transport:
        # the same SDK, events and errors (the transport maps aiohttp's exceptions onto httpx's),
        # at about 0.8x the CPU per call and 0.6x per streamed event (docs/performance.md). The
        # SDK sends `timeout` with every request, so the transport needs none of its own.
        self._client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url,
                                                max_retries=0, timeout=timeout_s,
                                                open_telemetry={"traces": False},
                                                http_client=anthropic.DefaultAioHttpClient())
        self._default_model = default_model
        self._max_tokens_cap = max_tokens_cap

    async def start(self) -> None:
        """Nothing to warm: the HTTP connection pool fills on the first call."""

    async def close(self) -> None:
        await self._client.close()

    @asynccontextmanager
    async def stream(self, request: ModelRequest) -> AsyncIterator[_AnthropicText]:
        model = request.model or self._default_model
        system: list[Any] = []
        if request.system:  # the stable prefix: cached
            system.append({"type": "text", "text": request.system,
                           "cache_control": {"type": "ephemeral"}})
        # Per turn, after the cache breakpoint: the date lines, then what was looked up.
        system += [{"type": "text", "text": part} for part in (request.context, request.recall)
                   if part]
        try:
            body: dict[str, Any] = {
                "model": model, "max_tokens": min(request.max_tokens, self._max_tokens_cap),
                "messages": [_message(m) for m in request.messages], "stream": True}
            if system:
                body["system"] = system
            if request.tools:
                body["tools"] = request.tools
            # The body serialised here, once, in pydantic-core's encoder, and sent as the
            # request's `content`: given `body=`, the SDK deep-copies it (its `copy_tree`) and
            # encodes it with the standard library's `json`, 9% of llm_stream's CPU per turn.
            events = await self._client.post("/v1/messages", content=to_json(body),
                                             cast_to=object, stream=True, stream_cls=_Events)
            async with events:
                yield _AnthropicText(events, Completion(model=model))
        except (anthropic.APIError, httpx2.TransportError) as exc:
            raise ProviderError(failure_of(exc)) from exc
