"""Every Prometheus metric Switchboard exports, in one place (prometheus-client, the official
client: its default registry is what `/metrics` serves). A service only moves the metrics it
owns; the rest stay at zero in its output. Label values are bounded sets (outcomes, model
names, org ids) — never user, client or turn ids, which would explode the series count.

Names and meanings are documented in docs/operations.md ("Metrics")."""

from __future__ import annotations

from typing import Any

from faststream.message.message import StreamMessage
from faststream.nats.prometheus.provider import NatsMetricsSettingsProvider
from faststream.prometheus import ConsumeAttrs
from faststream.prometheus.container import MetricsContainer
from faststream.prometheus.middleware import PrometheusMiddleware
from faststream.response import PublishCommand
from nats.aio.msg import Msg
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

# Buckets for whole turns and first tokens: from a cached local answer to a slow model.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)

TURN_SECONDS = Histogram(
    "switchboard_turn_duration_seconds",
    "Gateway: from a user_message to the turn's terminal frame on that socket.",
    ["outcome"], buckets=_LATENCY_BUCKETS)
"""outcome: completed | error | timeout."""

FIRST_TOKEN_SECONDS = Histogram(
    "switchboard_time_to_first_token_seconds",
    "llm_stream: from the provider call to its first streamed text.",
    ["provider", "model"], buckets=_LATENCY_BUCKETS)

TOKENS = Counter(
    "switchboard_model_tokens",
    "llm_stream: tokens used by model calls, by org, model and direction.",
    ["org", "model", "direction"])
"""direction: input | output."""

APPROVALS = Counter(
    "switchboard_approvals",
    "action_executor: decisions on approval cards, by outcome.",
    ["outcome"])
"""outcome: approved | rejected | expired."""

CONSUMER_PENDING = Gauge(
    "switchboard_jetstream_consumer_pending",
    "JetStream consumer lag at scrape time: messages not yet delivered (pending) and "
    "delivered but not acked (ack_pending), per stream and durable consumer.",
    ["stream", "consumer", "state"])

DLQ_DEPTH = Gauge(
    "switchboard_dlq_messages",
    "Messages kept in SB_DLQ for a consumer of this service (dlq.<stream>.<consumer>).",
    ["stream", "consumer"])

OPEN_SOCKETS = Gauge(
    "switchboard_open_sockets",
    "Gateway: WebSocket connections open now.")

RATE_LIMIT_REFUSALS = Counter(
    "switchboard_rate_limit_refusals",
    "Requests refused by a rate limit, quota or budget, by which limit refused them.",
    ["limit"])
"""limit: the limit's name (e.g. turns_per_user, org_tokens_month); set by the limiter."""


def subject_family(subject: str) -> str:
    """`turns.requested.acme` -> `turns.requested.*`: subjects carry org, client and turn ids
    from their third token on, which must neither reach a metrics endpoint (the gateway's is on
    its public port) nor make one series per org or per turn."""
    head = subject.split(".", 2)
    return ".".join(head[:2] + ["*"] * (len(head) > 2))


class _FamilyProvider(NatsMetricsSettingsProvider):
    __slots__ = ()

    def get_consume_attrs_from_message(self, msg: StreamMessage[Msg]) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        attrs["destination_name"] = subject_family(attrs["destination_name"])
        return attrs

    def get_publish_destination_name_from_cmd(self, cmd: PublishCommand) -> str:
        return subject_family(cmd.destination)


def _provider(msg: Any) -> _FamilyProvider | None:
    # A single NATS message or a publish (None); services consume no batches.
    return _FamilyProvider() if msg is None or isinstance(msg, Msg) else None


_FASTSTREAM_PREFIX = "switchboard_faststream"


def faststream_metrics(service: str) -> PrometheusMiddleware[Any, Any]:
    """FastStream's message counts and handling times (`switchboard_faststream_*`), labelled by
    subject family."""
    return PrometheusMiddleware(settings_provider_factory=_provider, registry=REGISTRY,
                                app_name=service, metrics_prefix=_FASTSTREAM_PREFIX)


def faststream_series() -> MetricsContainer:
    """The same series for code that consumes or publishes on nats-py directly (the hot paths:
    `pull_worker`, `bus.publish_command`): the container takes the metrics FastStream's
    middleware already registered, so both feed one set of series."""
    return MetricsContainer(REGISTRY, metrics_prefix=_FASTSTREAM_PREFIX, custom_label_names=())
