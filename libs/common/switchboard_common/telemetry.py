"""Logging and trace context. Logs are one line each and never contain message content."""

from __future__ import annotations

import logging
import sys

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

from switchboard_common.envelope import TraceContext

_configured = False


def setup(service: str, level: str = "INFO") -> trace.Tracer:
    """Configure logging and a tracer provider once per process. Exporters are added by
    deployment config (OTEL_* env) rather than here, so a laptop run exports nothing."""
    global _configured
    if not _configured:
        logging.basicConfig(
            level=level.upper(),
            stream=sys.stderr,
            format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
        )
        trace.set_tracer_provider(TracerProvider())
        _configured = True
    return trace.get_tracer(f"switchboard.{service}")


def current_trace() -> TraceContext:
    """The active span's W3C context, to put in an outgoing envelope."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return TraceContext(traceparent=carrier.get("traceparent"),
                        tracestate=carrier.get("tracestate"))


def extract(ctx: TraceContext) -> object:
    """An OpenTelemetry context to start a child span of an incoming message."""
    carrier = {k: v for k, v in (("traceparent", ctx.traceparent),
                                 ("tracestate", ctx.tracestate)) if v}
    return propagate.extract(carrier)


def settle_memory() -> None:
    """Call once start-up is done: move what start-up allocated (modules, models, clients)
    out of the garbage collector's view, so full collections stay short and do not show up
    as latency spikes on the token path."""
    import gc

    gc.collect()
    gc.freeze()
