"""NATS and FastStream wiring shared by the services."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

from faststream import ExceptionMiddleware
from faststream._internal.context import Context as _Context
from faststream.nats import NatsBroker, PubAck
from faststream.nats.annotations import NatsBroker as BrokerAnnotation
from faststream.nats.annotations import NatsMessage
from faststream.nats.message import NatsMessage as _NatsMessage
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.security import SASLPlaintext
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from switchboard_common.dead_letter import MSG_ID, dead_letter_delivery
from switchboard_common.metrics import faststream_metrics, faststream_series, subject_family
from switchboard_common.permissions import inbox_prefix
from switchboard_common.settings import nats_servers
from switchboard_common.streams import (
    ALL_STREAMS,
    ConsumerSpec,
    StreamSpec,
    declare_missing,
    ensure_consumer,
    ensure_streams,
)

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("switchboard.bus")


class LoopContext(_Context):
    """FastStream's `Context` parameter, resolved on the event loop. fast_depends runs a
    custom field's synchronous `use` through anyio.to_thread, so each `Context` parameter of a
    handler cost every message a trip to a worker thread and back (a queue, two locks, a loop
    wake-up: py-spy found it on the hot consumers, docs/performance.md). Resolving it is a
    dictionary lookup, which needs no thread. (The class is FastStream's own; its public
    `Context` is a factory function, so it is imported from where FastStream defines it.)"""

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        resolved: dict[str, Any] = super().use(**kwargs)
        return resolved


Message = Annotated[_NatsMessage, LoopContext("message")]
"""The delivered message (for manual acks), as FastStream's NatsMessage without the thread."""

reject_invalid = ExceptionMiddleware()
"""How handler failures end: a malformed message is dead-lettered at once, any other failure
of a JetStream message is nak'ed with backoff (see the two handlers below)."""


@reject_invalid.add_handler(ValidationError)
async def _reject_malformed(exc: ValidationError, message: NatsMessage,
                            broker: BrokerAnnotation) -> None:
    """A message that does not match its contract will never succeed: copy it to the
    dead-letter stream and terminate it at once instead of redelivering it max_deliver times.
    (Copied here, not from the advisory: a work queue drops a terminated message at once.)"""
    raw = message.raw_message
    log.warning("malformed message on %s rejected: %d validation error(s)",
                raw.subject, exc.error_count())
    await dead_letter_delivery(broker.connection, raw, "INVALID_MESSAGE")
    await message.reject()


_REDELIVERY_BASE_S = 0.5
_REDELIVERY_CAP_S = 8.0


def redelivery_delay(raw: Msg) -> float:
    """How long JetStream waits before delivering a failed message again: 0.5 s, 1 s, 2 s ...
    (capped at 8 s) by delivery count. A plain nak is redelivered at once, so a dependency
    that is down for two seconds (a Valkey restart) burnt every delivery in milliseconds."""
    delivered: int = raw.metadata.num_delivered or 1
    return float(min(_REDELIVERY_BASE_S * 2 ** (delivered - 1), _REDELIVERY_CAP_S))


@reject_invalid.add_handler(Exception)
async def _retry_later(exc: Exception, message: NatsMessage) -> None:
    """Any other failure of a JetStream handler: nak with backoff (redelivered up to
    max_deliver times, then dead-lettered from the advisory). Core NATS messages (request/
    reply) have nothing to redeliver: the failure is only logged, as before."""
    raw = message.raw_message
    if not raw.reply or not raw.reply.startswith("$JS.ACK."):
        log.error("handler for %s failed", raw.subject, exc_info=exc)
        return
    delay = redelivery_delay(raw)
    log.warning("handler for %s failed (%s); redelivery in %.1f s", raw.subject,
                type(exc).__name__, delay, exc_info=exc)
    await message.nack(delay=delay)


def make_broker(nats_url: str, name: str, graceful_timeout_s: float = 10.0,
                reconnected_cb: Callable[[], Awaitable[None]] | None = None, *,
                user: str | None = None, password: SecretStr | None = None) -> NatsBroker:
    """A broker that reconnects forever once connected and drains on close, so SIGTERM
    finishes in-flight handlers (up to `graceful_timeout_s`) before the process exits.
    `nats_url` may name several servers, comma-separated; the client fails over between them.

    Its middlewares: trace context into the headers of everything it publishes and out of
    the headers of everything it consumes, with a span each (OpenTelemetry); per-subject
    message counts and handling times (Prometheus, `switchboard_faststream_*`); malformed
    messages dead-lettered. Its log records go to the JSON log (telemetry.setup_logging).

    `name` is the service: its replies arrive under its own inbox prefix, the only one its
    NATS user may subscribe to (see permissions)."""
    security = (SASLPlaintext(user, password.get_secret_value())
                if user and password else None)
    hooks = _ReconnectHooks(reconnected_cb)
    broker = NatsBroker(
        nats_servers(nats_url),
        name=name,
        graceful_timeout=graceful_timeout_s,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        log_level=logging.DEBUG,
        logger=logging.getLogger(f"switchboard.{name}.broker"),
        middlewares=[NatsTelemetryMiddleware(),
                     faststream_metrics(name),
                     reject_invalid],
        reconnected_cb=hooks,
        inbox_prefix=inbox_prefix(name),
        security=security,
    )
    _HOOKS[broker] = hooks
    return broker


class _ReconnectHooks:
    """What a broker's client runs once it is connected again. nats-py awaits its
    `reconnected_cb` inside its reconnect; the JetStream work runs in a task of its own, so a
    server whose JetStream is still starting never holds the client back."""

    def __init__(self, first: Callable[[], Awaitable[None]] | None) -> None:
        self._first = first
        self.redeclare: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        if self._first is not None:
            await self._first()
        if self.redeclare is not None and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self.redeclare())


_HOOKS: weakref.WeakKeyDictionary[NatsBroker, _ReconnectHooks] = weakref.WeakKeyDictionary()
_REDECLARE_FIRST_S = 0.2
_declare_missing_retried = AsyncRetrying(
    stop=stop_after_attempt(10), wait=wait_exponential(multiplier=0.2, max=8.0), reraise=True,
    before_sleep=before_sleep_log(log, logging.INFO)).wraps(declare_missing)
"""Ten tries over about 45 s while the server's JetStream starts (tenacity)."""


async def connect_with_backoff(broker: NatsBroker, timeout_s: float) -> NatsClient:
    """Start-up waits for NATS instead of crashing, so services may start in any order."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return await broker.connect()
        except Exception as exc:  # nats raises several unrelated types for "not there yet"
            if "Authorization Violation" in str(exc):
                # Wrong or missing credentials: waiting will not fix them.
                raise ConnectionError("NATS refused this service's credentials "
                                      "(NATS_USER / NATS_PASSWORD)") from exc
            if time.monotonic() + delay > deadline:
                raise ConnectionError(f"NATS not reachable: {exc}") from exc
            log.info("waiting for NATS (%s)", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def prepare_jetstream(broker: NatsBroker, consumers: tuple[ConsumerSpec, ...] = (),
                            streams: tuple[StreamSpec, ...] = ALL_STREAMS, *,
                            replicas: int = 1) -> JetStreamContext:
    """Idempotently create the streams this service uses, with `replicas` copies
    (`permissions.ROLES[name].streams()`: its NATS user may configure only those), and its
    consumers.

    After every reconnect, what the server lacks is created again (`declare_missing`): a
    NATS server that restarted has lost its memory streams (SB_TURN_EVENTS: resume and seq
    continuity need it at once, not at the next deploy), and one that lost its store (no
    persistent volume) has lost everything."""
    js = broker.connection.jetstream()

    async def declare() -> None:
        await ensure_streams(js, streams, replicas)
        for spec in consumers:
            await ensure_consumer(js, spec)

    async def redeclare() -> None:
        await asyncio.sleep(_REDECLARE_FIRST_S)  # JetStream may still be starting
        try:
            created = await _declare_missing_retried(js, streams, consumers, replicas)
        except Exception:  # not ready yet, or gone again, every time
            log.warning("streams could not be declared again after a reconnect: "
                        "run `switchboard nats-streams` or restart this service")
            return
        if created:
            log.warning("streams declared again after a reconnect: %d created (the server "
                        "had lost them)", created)

    await declare()
    if (hooks := _HOOKS.get(broker)) is not None:
        hooks.redeclare = redeclare
    return js


async def publish_command(broker: NatsBroker, message: BaseModel, subject: str, *,
                          msg_id: str, stream: str, timeout: float = 5.0,
                          retry_s: float = 0.0) -> PubAck:
    """Publish to JetStream and wait for the store's ack. `msg_id` makes a re-publish within
    the stream's duplicate window a no-op (the ack then says `duplicate=True`).

    `retry_s`: for how long to publish again while no stream answers (a restarted server
    whose JetStream is starting, or one that lost its store while the services declare the
    streams again), for a message whose loss would cost more than the wait: a result that
    exists nowhere else once its command is gone.

    Sent on nats-py directly: four commands cross every turn, and FastStream's publish path
    (its middlewares, each with its own context and labels) was ~10% of context's CPU. What
    those middlewares did is done here once: a PRODUCER span, the trace context into the
    headers, and FastStream's published-message series (`switchboard_faststream_published_*`)."""
    nc = broker.connection
    family = subject_family(subject)
    headers = {MSG_ID: msg_id, "content-type": "application/json"}
    metrics = _published(str(nc.options.get("name") or ""), family)
    started = time.perf_counter()
    with _tracer.start_as_current_span(
            f"{family} publish", kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "messaging.destination.name": family,
                        "messaging.message.id": msg_id}):
        propagate.inject(headers)
        data = message.model_dump_json().encode()
        publish = nc.jetstream().publish
        try:
            try:
                ack = await publish(subject, data, timeout=timeout, stream=stream,
                                    headers=headers)
            except NoStreamResponseError:
                if retry_s <= 0:
                    raise
                # Only now the retrying machinery (~30 µs a call): not on every publish.
                ack = await AsyncRetrying(
                    stop=stop_after_delay(retry_s),
                    wait=wait_exponential(multiplier=0.1, max=2.0),
                    retry=retry_if_exception_type(NoStreamResponseError), reraise=True,
                    before_sleep=before_sleep_log(log, logging.INFO)).wraps(publish)(
                        subject, data, timeout=timeout, stream=stream, headers=headers)
        except Exception as exc:
            metrics.failed(exc)
            raise
        else:
            metrics.ok.inc()
        finally:
            metrics.duration.observe(time.perf_counter() - started)
    return ack


class _Published:
    """FastStream's published-message series for one (service, subject family)."""

    def __init__(self, service: str, family: str) -> None:
        container = faststream_series()
        labels = {"app_name": service, "broker": "nats", "destination": family}
        self._container, self._labels = container, labels
        self.duration = container.published_messages_duration_seconds.labels(**labels)
        self.ok = container.published_messages_total.labels(**labels, status="success")
        self._error = container.published_messages_total.labels(**labels, status="error")

    def failed(self, exc: BaseException) -> None:
        self._container.published_messages_exceptions_total.labels(
            **self._labels, exception_type=type(exc).__name__).inc()
        self._error.inc()


@functools.cache
def _published(service: str, family: str) -> _Published:
    return _Published(service, family)


class NoAnswer(Exception):
    """Request/reply: nobody subscribes to the subject, or no answer came in time."""

    def __init__(self, message: str, *, no_responders: bool = False) -> None:
        super().__init__(message)
        self.no_responders = no_responders
        """Nobody subscribes (the service is down or still starting), not just slow."""


R = TypeVar("R", bound=BaseModel)


async def request_reply(nc: NatsClient, subject: str, request: BaseModel, reply: type[R],
                        timeout_s: float) -> R:
    """Ask the one service that answers `subject` and parse its answer. Each caller decides
    what "no answer" means for it (a 503, a prompt without memory, a transient tool error)."""
    headers: dict[str, str] = {}
    propagate.inject(headers)  # the answering service's span joins the caller's trace
    try:
        msg = await nc.request(subject, request.model_dump_json().encode(), timeout=timeout_s,
                               headers=headers or None)
    except (NoRespondersError, NatsTimeout, TimeoutError) as exc:
        raise NoAnswer(f"no answer on {subject} within {timeout_s:g} s",
                       no_responders=isinstance(exc, NoRespondersError)) from exc
    return reply.model_validate_json(msg.data)


async def publish_fast(nc: NatsClient, subject: str, message: BaseModel) -> None:
    """Core NATS, fire-and-forget: the token path. No ack, no retry; loss is covered by
    the turn's retry/resume protocol, not by this call."""
    await nc.publish(subject, message.model_dump_json().encode())
