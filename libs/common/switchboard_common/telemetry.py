"""Logs and traces for every service.

Logs: one JSON object per line on stderr (python-json-logger), with the service, and the
trace and span ids of the active span so a log line leads to its trace. Everything goes
through `redaction.redact_value` on the way out. FastStream's own loggers (which colour their
output with ANSI codes whatever the stream is) are routed through the same handler.

Traces: the OpenTelemetry SDK, exporting over OTLP/HTTP when the standard variables ask for
it (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_TRACES_EXPORTER`
other than `otlp`, or `OTEL_SDK_DISABLED=true`, turn it off; headers, timeouts and batching
follow their OTEL_* variables too). Without an endpoint nothing is exported (a laptop run).
`service.name` is the service; span attributes are redacted before export. Trace context
crosses NATS in message headers (FastStream's NatsTelemetryMiddleware, see bus.py)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from pythonjsonlogger.json import JsonFormatter

from switchboard_common.redaction import redact_attributes, redact_value

log = logging.getLogger(__name__)

_configured = False


class _JsonFormatter(JsonFormatter):
    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level",
                                        "name": "logger"},
                         static_fields={"service": service})

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            log_data["trace_id"] = format(ctx.trace_id, "032x")
            log_data["span_id"] = format(ctx.span_id, "016x")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The redaction filter: every field of every record, message and traceback included.
        # uvicorn adds an ANSI-coloured copy of its message; the plain one is enough.
        return {key: redact_value(key, value) for key, value in log_data.items()
                if key != "color_message"}


def setup_logging(service: str, level: str = "INFO") -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    # Added next to what is there (in a service: nothing; under pytest: its capture handlers).
    if not any(isinstance(h.formatter, _JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonFormatter(service))
        root.addHandler(handler)
    # FastStream's module-level logger was created with a colouring handler of its own.
    for name in ("faststream", "faststream.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


class RedactingExporter(SpanExporter):
    """Passes spans on with their attributes (and their events' attributes) redacted; a span
    with nothing to redact (most of them) is passed on as it is."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([_redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _redacted(span: ReadableSpan) -> ReadableSpan:
    attributes = redact_attributes(span.attributes)
    events = [(e, redact_attributes(e.attributes)) for e in span.events]
    if attributes is None and all(cleaned is None for _, cleaned in events):
        return span
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=span.attributes if attributes is None else attributes,
        events=[e if cleaned is None else Event(e.name, cleaned, e.timestamp)
                for e, cleaned in events],
        links=span.links, kind=span.kind, status=span.status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)


def _exporting() -> bool:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if "otlp" not in env.get("OTEL_TRACES_EXPORTER", "otlp").lower():
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


_BATCH = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 64, "OTEL_BSP_SCHEDULE_DELAY": 500}
"""Smaller span batches, sent more often, than the SDK's 512 every 5 s: the export thread
encodes a batch holding the GIL, and a 512-span batch stalled the token path long enough to
double the first-delta p99 (18 -> 9.6 ms at concurrency 1, same CPU per turn;
docs/performance.md). The OTEL_BSP_* variables still win."""


def _ours(env: Mapping[str, str], name: str) -> int | None:
    """Our default for a batch setting, or None where the variable is set (the SDK reads it)."""
    return None if env.get(name) else _BATCH[name]


def setup(service: str, level: str = "INFO") -> trace.Tracer:
    """Configure logging and the tracer provider once per process."""
    global _configured
    if not _configured:
        setup_logging(service, level)
        provider = TracerProvider(resource=Resource.create({
            "service.name": service, "service.namespace": "switchboard"}))
        if _exporting():
            if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") != "http/protobuf":
                log.warning("only OTLP over http/protobuf is built in; exporting with it")
            # OTLPSpanExporter and BatchSpanProcessor read their OTEL_* variables themselves;
            # the batch defaults are ours (see _BATCH).
            env = os.environ
            provider.add_span_processor(BatchSpanProcessor(
                RedactingExporter(OTLPSpanExporter()),
                max_export_batch_size=_ours(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
                schedule_delay_millis=_ours(env, "OTEL_BSP_SCHEDULE_DELAY")))
        trace.set_tracer_provider(provider)
        _configured = True
    return trace.get_tracer(f"switchboard.{service}")


def settle_memory() -> None:
    """Call once start-up is done: move what start-up allocated (modules, models, clients)
    out of the garbage collector's view, so full collections stay short and do not show up
    as latency spikes on the token path."""
    import gc

    gc.collect()
    gc.freeze()
