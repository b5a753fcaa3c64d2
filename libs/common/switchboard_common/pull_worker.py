"""JetStream pull consumers on nats-py directly, for the commands every turn carries
(turns.requested and model.completed in context, model.requested in llm_stream).

FastStream's pull subscriber runs, per message, a chain of middlewares (logging,
OpenTelemetry, Prometheus, exceptions, acks) and fast_depends around the handler, and sends one
pull request per message (streams.PULL_NOTE). On these consumers that was the largest item of
the services' own CPU per turn (docs/performance.md, "Cost per turn"). A `PullWorker` does
what those layers did, once per message and by hand:
- it keeps one pull request standing for as many messages as it has room for (its window) and
  renews it when it is used up or expires: no request per message, and no message fetched
  ahead of the window, so none waits unacked beyond its own handling (ack_wait);
- the trace context from the message's headers, with a CONSUMER span around the handler;
- FastStream's Prometheus series for the subject family (`switchboard_faststream_received_*`,
  the same names and labels as every other consumer);
- failures end as `bus.reject_invalid` ends them: a malformed message is dead-lettered and
  terminated at once, any other failure is nak'ed with backoff (`bus.redelivery_delay`).
Durability is the same: the same durable consumer, explicit acks, max_deliver, dead letters.
The services still declare these subjects to FastStream for their AsyncAPI documents
(`docs_broker`), where nothing consumes them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel, ValidationError

from switchboard_common.bus import redelivery_delay
from switchboard_common.dead_letter import MSG_ID, dead_letter_delivery
from switchboard_common.metrics import faststream_series, subject_family
from switchboard_common.streams import ConsumerSpec

log = logging.getLogger(__name__)
tracer = trace.get_tracer("switchboard.pull_worker")

M = TypeVar("M", bound=BaseModel)

_STATUS = "Status"
_RETRY_AFTER_ERROR_S = 1.0
"""After a status that ends a pull request abnormally (409: consumer deleted, leader changed):
wait before asking again, not in a tight loop."""


class Delivery:
    """One delivered message and how it ended, with FastStream's NatsMessage calls (`ack`,
    `nack`, `reject`, `in_progress`, `raw_message`). The first ending counts; later ones are
    ignored, as FastStream ignores them."""

    __slots__ = ("raw_message", "status")

    def __init__(self, raw: Msg) -> None:
        self.raw_message = raw
        self.status: str | None = None
        """acked, nacked or rejected once ended (FastStream's ProcessingStatus values)."""

    async def ack(self) -> None:
        if self.status is None:
            self.status = "acked"
            await self.raw_message.ack()

    async def nack(self, delay: float | None = None) -> None:
        if self.status is None:
            self.status = "nacked"
            await self.raw_message.nak(delay=delay)

    async def reject(self) -> None:
        if self.status is None:
            self.status = "rejected"
            await self.raw_message.term()

    async def in_progress(self) -> None:
        await self.raw_message.in_progress()


Handler = Callable[[M, Delivery], Awaitable[None]]


class _Metrics:
    """FastStream's consumer series for one subject family, label children resolved once."""

    def __init__(self, service: str, family: str) -> None:
        container = faststream_series()
        labels = {"app_name": service, "broker": "nats", "handler": family}
        self._container, self._labels = container, labels
        self.received = container.received_messages_total.labels(**labels)
        self.size = container.received_messages_size_bytes.labels(**labels)
        self.in_process = container.received_messages_in_process.labels(**labels)
        self.duration = container.received_processed_messages_duration_seconds.labels(**labels)
        self._by_status = {status: container.received_processed_messages_total.labels(
            **labels, status=status) for status in ("acked", "nacked", "rejected", "error")}

    def processed(self, status: str) -> None:
        self._by_status[status].inc()

    def exception(self, exc: BaseException) -> None:
        self._container.received_processed_messages_exceptions_total.labels(
            **self._labels, exception_type=type(exc).__name__).inc()


class PullWorker(Generic[M]):
    """Consumes `spec` with `workers` handlers at a time, at most `window` messages held
    (delivered and not yet handled; `window` > `workers` fetches ahead for handlers that are
    short, and keeps one worker's messages in stream order). `auto_ack`: ack once the handler
    returns; otherwise the handler ends each message itself (a `Delivery`)."""

    def __init__(self, nc: NatsClient, spec: ConsumerSpec, model: type[M],
                 handler: Handler[M], *, service: str, inbox: str, workers: int = 1,
                 window: int | None = None, auto_ack: bool = False,
                 expires_s: float = 5.0) -> None:
        self._nc, self._spec, self._model, self._handler = nc, spec, model, handler
        self._workers, self._window = workers, max(window or workers, workers)
        self._auto_ack, self._expires_s = auto_ack, expires_s
        self._inbox = inbox
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream.name}.{spec.name}"
        self._family = subject_family(spec.filter_subject)
        self._metrics = _Metrics(service, self._family)
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._held = 0
        self._request = 0
        """Serial of the standing pull request (its reply subject ends with it)."""
        self._requested = 0
        """Messages the standing request may still deliver; 0: none stands."""
        self._deadline = 0.0
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._idle = asyncio.Event()
        """Set once stopping and no handler runs any more."""

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_msg)
        self._running = True
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._watch()))
        await self._pull()

    async def stop(self, grace_s: float) -> None:
        """Stop asking, let the handlers in progress finish within `grace_s`, and give held
        messages back at once (another replica takes them)."""
        self._running = False
        if self._sub is not None:
            with contextlib.suppress(NatsError):
                await self._sub.unsubscribe()
        while not self._queue.empty():
            self._held -= 1
            with contextlib.suppress(NatsError):
                await self._queue.get_nowait().nak()
        if self._held > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace_s)
        for task in self._tasks:
            task.cancel()

    async def _pull(self) -> None:
        """Ask for what the window has room for, unless a request still stands."""
        room = self._window - self._held
        if not self._running or self._requested > 0 or room <= 0:
            return
        self._request += 1
        self._requested = room
        self._deadline = time.monotonic() + self._expires_s
        body = json.dumps({"batch": room, "expires": int(self._expires_s * 1e9)}).encode()
        try:
            await self._nc.publish(self._next, body, reply=f"{self._inbox}.{self._request}")
        except NatsError as exc:  # disconnected: the watchdog asks again
            log.warning("pull request for %s failed: %s", self._spec.name, type(exc).__name__)

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is None:
            # A delivery carries its stream subject, not the request's: it is counted against
            # the standing request (a lost one the watchdog replaced may deliver a few more).
            self._held += 1
            self._requested = max(0, self._requested - 1)
            self._queue.put_nowait(msg)
        elif status == "100":
            return  # a heartbeat; none is asked for
        elif msg.subject.endswith(f".{self._request}"):  # not a replaced request's
            # 408: the request expired; 409: it ended otherwise (consumer deleted or changed
            # leader, too many waiting requests); 404: nothing to fetch.
            self._requested = 0
            if status == "409":
                log.warning("pull request for %s ended: %s", self._spec.name,
                            msg.headers.get("Description", "") if msg.headers else "")
                self._deadline = time.monotonic() + _RETRY_AFTER_ERROR_S
                self._requested = -1  # the watchdog asks again after the pause
                return
        if self._requested == 0:
            await self._pull()

    async def _watch(self) -> None:
        """Ask again when the standing request was lost (a reconnect drops it without a
        status) or after an error's pause."""
        while True:
            await asyncio.sleep(self._expires_s / 2)
            if self._requested != 0 and time.monotonic() > self._deadline + 1.0:
                self._requested = 0
                await self._pull()

    async def _work(self) -> None:
        while True:
            msg = await self._queue.get()
            try:
                await self._handle(msg)
            finally:
                self._held -= 1
                if self._held == 0 and not self._running:
                    self._idle.set()
            if self._requested == 0:
                await self._pull()

    async def _handle(self, msg: Msg) -> None:
        metrics, delivery = self._metrics, Delivery(msg)
        metrics.received.inc()
        metrics.size.observe(len(msg.data))
        metrics.in_process.inc()
        started = time.perf_counter()
        ok = False
        try:
            with tracer.start_as_current_span(
                    f"{self._family} process", context=propagate.extract(msg.headers or {}),
                    kind=SpanKind.CONSUMER,
                    attributes={"messaging.system": "nats",
                                "messaging.destination.name": self._family,
                                "messaging.consumer.group.name": self._spec.name,
                                "messaging.message.id": (msg.headers or {}).get(MSG_ID, "")},
                    record_exception=False, set_status_on_exception=False) as span:
                try:
                    await self._run(msg, delivery)
                    ok = True
                except Exception as exc:
                    span.set_status(StatusCode.ERROR, type(exc).__name__)
                    metrics.exception(exc)
                    await self._failed(msg, delivery, exc)
        finally:
            metrics.duration.observe(time.perf_counter() - started)
            metrics.in_process.dec()
            # Handed off without an ending yet (acked later, as a turn's in context): counted
            # as FastStream counts a manual-ack handler that returned.
            metrics.processed(delivery.status or ("acked" if ok else "error"))

    async def _run(self, msg: Msg, delivery: Delivery) -> None:
        await self._handler(self._model.model_validate_json(msg.data), delivery)
        if self._auto_ack:
            await delivery.ack()

    async def _failed(self, msg: Msg, delivery: Delivery, exc: Exception) -> None:
        try:
            if isinstance(exc, ValidationError):
                # Will never succeed: dead-letter it now instead of max_deliver times.
                log.warning("malformed message on %s rejected: %d validation error(s)",
                            msg.subject, exc.error_count())
                await dead_letter_delivery(self._nc, msg, "INVALID_MESSAGE")
                await delivery.reject()
                return
            delay = redelivery_delay(msg)
            log.warning("handler for %s failed (%s); redelivery in %.1f s", msg.subject,
                        type(exc).__name__, delay, exc_info=exc)
            await delivery.nack(delay=delay)
        except NatsError as nats_exc:  # not ended: JetStream redelivers after ack_wait
            log.warning("could not end a failed message on %s: %s", msg.subject,
                        type(nats_exc).__name__)


def docs_broker(like: NatsBroker) -> NatsBroker:
    """A broker that is never connected: the subjects `PullWorker`s consume are declared on
    it for the service's AsyncAPI document (`AsyncAPI(broker, docs, ...)`). Its server is
    `like`'s, so the document names one server."""
    return NatsBroker(list(like.specification.url), security=like.specification.security)
