"""The redaction net under logs and spans: patterns, whole bodies, the JSON log formatter
(message, arguments, tracebacks, extras) and the span exporter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from switchboard_common.redaction import REDACTED, redact, redact_value
from switchboard_common.telemetry import RedactingExporter, _JsonFormatter


@pytest.mark.parametrize("text", [
    "write to jane.doe+vip@example.org now", "call +1 415 555 0134", "call +44 20 7946 0958",
    "call (415) 555-0134", "call 415-555-0134", "card 4111 1111 1111 1111",
    "card 4111-1111-1111-1111", "card 4111111111111111", "amex 378282246310005",
])
def test_personal_data_is_replaced(text: str) -> None:
    out = redact(text)
    assert not any(ch.isdigit() for ch in out.split(" ", 1)[1]) and "@" not in out, out


@pytest.mark.parametrize("text", [
    "turn 4bf92f3577b34da6a3ce929d0e0e4736 took 1234 ms", "at 2026-11-30T16:02:19.123Z",
    "listening on 127.0.0.1:8080", "seq 18 -> 61", "order 1234567890123 (fails Luhn)",
    "trace 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
])
def test_ids_times_and_addresses_survive(text: str) -> None:
    assert redact(text) == text


def test_bodies_are_dropped_whole_and_containers_cleaned() -> None:
    assert redact_value("text", "anything at all") == REDACTED
    assert redact_value("body", "") == ""
    cleaned = redact_value("args", {"to": ["a@b.co"], "body": "hi", "n": 3})
    assert cleaned == {"to": ["[email]"], "body": REDACTED, "n": 3}


def test_json_log_lines_are_redacted_everywhere() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_JsonFormatter("action_executor"))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("bad address jane@example.org +1 415 555 0134")
        except ValueError:
            logger.exception("sending to %s failed", "jane@example.org",
                             extra={"body": "secret words", "card": "4111 1111 1111 1111"})
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    record = json.loads(line)
    assert record["service"] == "action_executor" and record["level"] == "ERROR"
    assert record["message"] == "sending to [email] failed"
    assert record["body"] == REDACTED and record["card"] == "[card]"
    assert "ValueError: bad address [email] [phone]" in record["exc_info"]
    for needle in ("jane@", "555 0134", "4111", "secret words"):
        assert needle not in line


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_span_attributes_and_events_are_redacted_before_export() -> None:
    kept = _Keep()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingExporter(kept)))
    with provider.get_tracer("t").start_as_current_span("send", attributes={
            "email.to": "jane@example.org", "messaging.message.body": "hello",
            "gen_ai.usage.input_tokens": 12}) as span:
        span.add_event("failed", {"exception.message": "no route to +1 415 555 0134"})
    (out,) = kept.spans
    assert out.attributes == {"email.to": "[email]", "messaging.message.body": REDACTED,
                              "gen_ai.usage.input_tokens": 12}
    assert out.events[0].attributes == {"exception.message": "no route to [phone]"}
    assert out.context == span.get_span_context()


def test_a_span_with_nothing_to_redact_is_passed_on_as_it_is() -> None:
    seen, kept = _Keep(), _Keep()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(seen))
    with provider.get_tracer("t").start_as_current_span("turns.requested process", attributes={
            "messaging.destination.name": "turns.requested",
            "switchboard.turn_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "messaging.message.id": "turn:o1:u1:0af7651916cd43dd8448eb211c80319c",
            "messaging.message.body.size": 812}) as span:
        span.add_event("retry", {"attempt": 2})
    RedactingExporter(kept).export(seen.spans)
    assert kept.spans[0] is seen.spans[0]


def test_message_ids_are_redacted_since_producers_choose_them() -> None:
    kept = _Keep()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingExporter(kept)))
    with provider.get_tracer("t").start_as_current_span("ingest process", attributes={
            "messaging.destination.name": "ingest.o1",
            "messaging.message.id": "ingest:o1:mia:msg.4711@example.com"}):
        pass
    (out,) = kept.spans
    assert out.attributes == {"messaging.destination.name": "ingest.o1",
                              "messaging.message.id": "ingest:o1:mia:[email]"}
