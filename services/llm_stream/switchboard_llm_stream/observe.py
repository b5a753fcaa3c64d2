"""Each model call as an OpenTelemetry span in the GenAI semantic conventions, and the
Prometheus metrics it feeds (time to first token; tokens by org, model and direction).

Attributes follow the GenAI conventions (`gen_ai.operation.name`, `gen_ai.provider.name`,
`gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.input_tokens`,
`gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons`,
`gen_ai.response.time_to_first_chunk`); prompts and answers are never recorded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

from switchboard_common.metrics import FIRST_TOKEN_SECONDS, TOKENS
from switchboard_common.model import ModelRequest, ProviderFailure
from switchboard_llm_stream.domain.provider import Completion

tracer = trace.get_tracer("switchboard.llm_stream")


class ModelCall:
    def __init__(self, span: trace.Span, provider: str, request: ModelRequest) -> None:
        self._span = span
        self._provider = provider
        self._request = request
        self._started = time.monotonic()
        self.first_token_s: float | None = None

    def first_token(self) -> None:
        self.first_token_s = time.monotonic() - self._started
        self._span.set_attribute("gen_ai.response.time_to_first_chunk", self.first_token_s)

    def finished(self, completion: Completion | None, failure: ProviderFailure | None) -> None:
        span = self._span
        if failure is not None:
            span.set_attribute("error.type", failure.code.value)
            span.set_status(trace.StatusCode.ERROR, failure.code.value)
        if completion is None:
            return
        model = completion.model or self._request.model or "default"
        usage = completion.usage
        span.set_attributes({
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.response.finish_reasons": [completion.stop_reason or "unknown"]})
        if self.first_token_s is not None:
            FIRST_TOKEN_SECONDS.labels(self._provider, model).observe(self.first_token_s)
        org = self._request.org_id
        TOKENS.labels(org, model, "input").inc(usage.input_tokens)
        TOKENS.labels(org, model, "output").inc(usage.output_tokens)


@contextmanager
def model_call(provider: str, request: ModelRequest) -> Iterator[ModelCall]:
    requested = request.model or "default"
    with tracer.start_as_current_span(f"chat {requested}", kind=trace.SpanKind.CLIENT,
                                      attributes={
                                          "gen_ai.operation.name": "chat",
                                          "gen_ai.provider.name": provider,
                                          "gen_ai.request.model": requested,
                                          "gen_ai.request.max_tokens": request.max_tokens,
                                          "switchboard.turn_id": request.turn_id,
                                          "switchboard.purpose": request.purpose,
                                      }) as span:
        yield ModelCall(span, provider, request)
