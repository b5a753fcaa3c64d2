"""Starting, attaching to and relaying turns for one socket.

Per turn and socket there is one `TurnRelay`: it subscribes to the turn's events first, then
either publishes the TurnRequest (a new turn) or replays what SB_TURN_EVENTS kept (a
duplicate or a resume), then streams live until the terminal event or the deadline. Events
are forwarded as the raw JSON text the producer published; only type and seq are read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.errors import NoStreamResponseError
from opentelemetry import context as otel_context
from opentelemetry import trace
from redis.exceptions import RedisError

from switchboard_common.envelope import new_id, utcnow
from switchboard_common.errors import ErrorCode
from switchboard_common.metrics import TURN_SECONDS
from switchboard_common.streams import TURNS
from switchboard_common.turns import (
    DEFAULT_CONVERSATION,
    TurnCancel,
    TurnObserved,
    TurnRequest,
    TurnStarted,
    turn_events_subject,
)
from switchboard_gateway.adapters.events import Leave, Listener, TurnBus
from switchboard_gateway.adapters.limits import Then
from switchboard_gateway.adapters.store import TurnStore
from switchboard_gateway.domain.identity import Identity
from switchboard_gateway.domain.protocol import (
    Cancel,
    ErrorFrame,
    Resume,
    UserMessage,
    peek_event,
)
from switchboard_gateway.domain.turns import (
    GapRepair,
    SeqFilter,
    TurnRecord,
    overtaken_end_frames,
    retry_attempt,
)
from switchboard_gateway.settings import Settings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("switchboard.gateway")

# What "a dependency is down" looks like from here: Valkey, NATS, or a timeout talking to them.
_UNAVAILABLE = (RedisError, NatsError, OSError, TimeoutError)

_REPUBLISH_WITHIN = timedelta(seconds=TURNS.duplicate_window_s * 0.8)
"""A re-sent key's request is published again only while JetStream would still recognise
the first publish as the same message (its duplicate window, with a margin): later, a first
publish that was stored and has finished would run again."""

_SETTLE_S = 0.5
"""After a replay, when the kept events are read once more (see `TurnRelay._settle`)."""


class Outbox(Protocol):
    def send(self, text: str) -> None:
        """Queue one frame for the socket; never blocks."""


def _error(code: ErrorCode, message: str, *, org: str, turn_id: str | None = None,
           seq: int = 0, retryable: bool = False, key: str | None = None) -> str:
    return ErrorFrame(org_id=org, turn_id=turn_id, seq=seq, code=code, message=message,
                      retryable=retryable, idempotency_key=key).model_dump_json()


def _checkpoint() -> None:
    """nats-py swallows a CancelledError that arrives while it flushes (Client._flush_pending),
    so a socket closing during a publish would leave its relay waiting for the deadline.
    Re-raise a cancellation that was requested but eaten."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class TurnRelay:
    """Forwards one turn's events to one socket, each exactly once and in seq order."""

    def __init__(self, bus: TurnBus, record: TurnRecord, out: Outbox, last_seq: int = 0,
                 idle_s: float = 150.0) -> None:
        self._bus = bus
        self._idle_s = idle_s
        self._heard = 0.0
        self._record = record
        self._out = out
        self._filter = SeqFilter(last_seq)
        self._done = asyncio.Event()
        self.outcome = "timeout"
        """How the turn ended for this socket: completed, error or timeout."""
        # Live events wait here while stored ones are replayed, so the socket sees stored
        # events first and live ones after, never interleaved out of order.
        self._held: list[bytes] | None = []
        self._gap = GapRepair()
        self._tasks: set[asyncio.Task[None]] = set()
        self.subject = turn_events_subject(record.org, record.turn_id)

    async def _on_live(self, msg: Msg) -> None:
        if self._held is not None:
            self._held.append(msg.data)
        else:
            self._deliver(msg.data)

    def _deliver(self, data: bytes, live: bool = True) -> None:
        try:
            kind, seq = peek_event(data)
        except ValueError:
            log.warning("turn %s: unreadable stream event dropped", self._record.turn_id)
            return
        self._heard = asyncio.get_running_loop().time()
        if self._filter.overtaken_end(kind, seq):
            log.warning("turn %s: terminal event at seq %d after seq %d was sent; "
                        "the answer follows whole", self._record.turn_id, seq,
                        self._filter.last_seq)
            frames = overtaken_end_frames(kind, data, self._filter.last_seq)
            self._filter.accept(kind, self._filter.last_seq + len(frames))
            for frame in frames:
                self._out.send(frame)
            self._end(kind)
            return
        if kind == "turn_retry" and not self._gap.active and self._filter.renumbered_retry(
                seq, retry_attempt(data)):
            log.warning("turn %s: attempt restarted at seq %d after seq %d was sent; "
                        "the answer follows whole", self._record.turn_id, seq,
                        self._filter.last_seq)
            self._gap.start(self._filter.last_seq, shown_known=False)
        elif self._filter.gap_before(seq) and not self._gap.active:
            if live:
                # Events were lost on the way (a NATS restart mid-stream): hold the live ones
                # and refill the gap from the events SB_TURN_EVENTS kept; never forward a
                # silent gap.
                self._held = [data]
                self._spawn(self._refill())
                return
            # Kept events that do not reach back to the last one sent: SB_TURN_EVENTS lives in
            # memory, and a restarted server declared it again mid-turn.
            self._lost(seq)
        fresh = self._filter.accept(kind, seq)
        for frame in self._gap.frames(kind, seq, data, fresh):
            self._out.send(frame)
        if self._filter.finished:
            self._end(kind)

    def _end(self, kind: str) -> None:
        if not self._done.is_set():
            self.outcome = "completed" if kind == "turn_completed" else "error"
            self._done.set()

    async def run(self, *, first_frame: str | None, request: TurnRequest | None = None
                  ) -> None:
        """Relay until the turn ends for this socket. With `request`, publish it once
        subscribed (a new turn); otherwise replay the stored events first."""
        sub = await self._bus.follow(self.subject, self._on_live)
        try:
            _checkpoint()
            if first_frame is not None:
                self._out.send(first_frame)
            if request is not None:
                await self._bus.publish_turn(request)
            else:
                await self._replay()
            _checkpoint()
            held, self._held = self._held or [], None
            for data in held:
                self._deliver(data)
            if request is None:
                self._spawn(self._settle(self._filter.last_seq))
            await self._until_done()
        finally:
            for task in self._tasks:
                task.cancel()
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()

    async def _replay(self) -> None:
        async with contextlib.aclosing(self._bus.replay(self.subject)) as batches:
            async for batch in batches:
                for data in batch:
                    self._deliver(data, live=False)
                if self._filter.finished:
                    return

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, last_seq: int) -> None:
        """Read the kept events once more, shortly after a replay, if nothing came since.
        An event published before the live subscription reached the server is not sent to
        it, and the server stores events in the stream asynchronously: such an event may
        be missing from the replay too. A later event would reveal the gap, but if it was
        the last one for now (or the terminal one) the socket would wait in silence."""
        await asyncio.sleep(_SETTLE_S)
        if self._filter.finished or self._held is not None or \
                self._filter.last_seq != last_seq:
            return
        self._held = []
        await self._refill()

    async def _refill(self) -> None:
        try:
            await self._replay()
        except _UNAVAILABLE as exc:
            log.warning("turn %s: refill after a gap failed: %s", self._record.turn_id,
                        type(exc).__name__)
        held, self._held = self._held or [], None
        if held and self._filter.gap_before(seq := peek_event(held[0])[1]) and \
                not self._gap.active:
            self._lost(seq)  # not kept either
        for data in held:
            self._deliver(data, live=False)

    def _lost(self, seq: int) -> None:
        """Events before `seq` are gone for good: hold back the rest of the text and send it
        whole with the terminal event (GapRepair), so the client still ends with the full
        answer; from a `turn_retry` when it resumed with text this relay never saw."""
        log.warning("turn %s: events lost before seq %d; the answer follows whole",
                    self._record.turn_id, seq)
        self._gap.start(self._filter.last_seq, shown_known=not self._filter.resumed)

    async def _until_done(self) -> None:
        """Until the terminal event, the hard cap (the turn's deadline) or `idle_s` without
        any frame. A turn that keeps streaming is never cut before the hard cap."""
        if self._filter.finished:
            return
        loop = asyncio.get_running_loop()
        hard = loop.time() + (self._record.deadline_at - utcnow()).total_seconds()
        self._heard = max(self._heard, loop.time())
        while True:
            until = min(hard, self._heard + self._idle_s)
            try:
                async with asyncio.timeout_at(until):
                    await self._done.wait()
                return
            except TimeoutError:
                if loop.time() < hard and self._heard + self._idle_s > loop.time():
                    continue  # a frame came meanwhile: keep following
            break
        # Backstop for a turn whose services went silent: the client must never hang.
        # The turn may still finish server-side; this socket stops following it.
        self._filter.finished = True
        log.warning("turn %s: no terminal event (%s)", self._record.turn_id,
                    "hard cap" if loop.time() >= hard else "silent")
        self._out.send(_error(
            ErrorCode.TURN_TIMEOUT, "no answer before the turn's deadline"
            if loop.time() >= hard else "the turn went silent",
            org=self._record.org, turn_id=self._record.turn_id,
            seq=self._filter.last_seq + 1, retryable=True))


@dataclass
class Claim:
    """A new turn's claim of its idempotency key (`TurnStore.claim_step`), and its reply once
    it ran."""

    record: TurnRecord
    step: Then
    ran: bool = False
    reply: bytes | None = None

    def took(self, reply: bytes | None) -> None:
        self.ran, self.reply = True, reply


class TurnService:
    """What a socket can ask for: start a turn (or attach to the one its key already started)
    and resume a turn it owns."""

    def __init__(self, bus: TurnBus, store: TurnStore, settings: Settings) -> None:
        self._bus = bus
        self._store = store
        self._deadline = timedelta(seconds=settings.turn_deadline_s)
        self._idle_s = settings.turn_idle_timeout_s

    def new_claim(self, who: Identity, msg: UserMessage) -> Claim:
        """The turn this message would start, not claimed yet: its claim may run inside the
        turn's admission (`SocketAdmission.admit`), or in `claim`."""
        record = TurnRecord(
            turn_id=new_id(), org=who.org, user=who.user, client_id=msg.client_id,
            conversation_id=msg.conversation_id or DEFAULT_CONVERSATION,
            deadline_at=utcnow() + self._deadline)
        return Claim(record, self._store.claim_step(record, msg.idempotency_key))

    async def claim(self, who: Identity, msg: UserMessage, claim: Claim
                    ) -> tuple[TurnRecord, bool] | str:
        """The turn for this message and whether it already existed, or an error frame.
        `claim`: from `new_claim`; run here unless the admission ran it."""
        record = claim.record
        try:
            claimed = (await self._store.claimed(record, claim.reply) if claim.ran else
                       await self._store.claim(record, msg.idempotency_key))
        except _UNAVAILABLE as exc:
            log.warning("turn start refused, Valkey unavailable: %s", type(exc).__name__)
            return _error(ErrorCode.UNAVAILABLE, "turn state store unavailable, retry",
                          org=who.org, retryable=True, key=msg.idempotency_key)
        if claimed is None:  # the key's turn expired between the two reads
            return _error(ErrorCode.UNAVAILABLE, "idempotency key is being reset, retry",
                          org=who.org, retryable=True, key=msg.idempotency_key)
        return claimed, claimed.turn_id != record.turn_id

    @staticmethod
    def started_frame(record: TurnRecord, msg: UserMessage, duplicate: bool) -> str:
        return TurnStarted(org_id=record.org, turn_id=record.turn_id,
                           client_id=record.client_id, conversation_id=record.conversation_id,
                           idempotency_key=msg.idempotency_key,
                           duplicate=duplicate).model_dump_json()

    async def run_turn(self, who: Identity, record: TurnRecord, msg: UserMessage,
                       duplicate: bool, out: Outbox) -> None:
        relay = TurnRelay(self._bus, record, out, idle_s=self._idle_s)
        started = self.started_frame(record, msg, duplicate)
        request = TurnRequest(
            org_id=who.org, turn_id=record.turn_id, user_id=who.user,
            client_id=record.client_id, conversation_id=record.conversation_id, text=msg.text,
            idempotency_key=msg.idempotency_key, deadline_at=record.deadline_at)
        if duplicate:
            if utcnow() < record.deadline_at - self._deadline + _REPUBLISH_WITHIN:
                # The key's first attempt may have ended without knowing whether JetStream
                # stored its request (no ack in time: a frozen or overloaded server). The
                # same request under the same message id again: a no-op if JetStream has it
                # (deduplicated), else the turn starts now, under the turn id the key holds.
                try:
                    await self._bus.publish_turn(request)
                except _UNAVAILABLE as exc:
                    await self._not_queued(record, msg, exc, out, release=False)
                    return
            try:
                await relay.run(first_frame=started)
            except _UNAVAILABLE as exc:
                log.warning("turn %s: following it again failed: %s", record.turn_id,
                            type(exc).__name__)
                out.send(_error(ErrorCode.UNAVAILABLE, "could not follow the turn, retry",
                                org=record.org, turn_id=record.turn_id, retryable=True,
                                key=msg.idempotency_key))
            return
        started_at = time.monotonic()
        with contextlib.suppress(*_UNAVAILABLE):  # other tabs miss it live; history has it
            await self._bus.announce(TurnObserved(
                org_id=who.org, turn_id=record.turn_id, user_id=who.user,
                client_id=record.client_id, conversation_id=record.conversation_id,
                text=msg.text, deadline_at=record.deadline_at))
        # One trace per turn, whatever socket it came from: a root span (empty parent
        # context), whose context the broker puts in the TurnRequest's headers; every
        # service's spans for this turn descend from it.
        with tracer.start_as_current_span(
                "turn", context=otel_context.Context(), kind=trace.SpanKind.SERVER,
                attributes={"switchboard.org_id": who.org, "switchboard.turn_id": record.turn_id,
                            "switchboard.client_id": record.client_id}) as span:
            try:
                await relay.run(first_frame=started, request=request)
            except _UNAVAILABLE as exc:
                span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                # Only a request no stream answered is surely not stored: its key is freed
                # for the retry. After any other failure (a timeout waiting for the ack) it
                # may be stored and run: the key keeps this turn id, and the retry with the
                # same key publishes it again (above) and follows it.
                await self._not_queued(record, msg, exc, out,
                                       release=isinstance(exc, NoStreamResponseError))
                return
            span.set_attribute("switchboard.outcome", relay.outcome)
        TURN_SECONDS.labels(relay.outcome).observe(time.monotonic() - started_at)

    async def _not_queued(self, record: TurnRecord, msg: UserMessage, exc: Exception,
                          out: Outbox, *, release: bool) -> None:
        log.warning("turn %s: TurnRequest not published: %s", record.turn_id,
                    type(exc).__name__)
        if release:
            with contextlib.suppress(*_UNAVAILABLE):
                await self._store.release(record, msg.idempotency_key)
        out.send(_error(ErrorCode.UNAVAILABLE, "could not queue the turn, retry",
                        org=record.org, turn_id=record.turn_id, retryable=True,
                        key=msg.idempotency_key))

    async def owned_turn(self, who: Identity, msg: Resume | Cancel) -> TurnRecord | str:
        try:
            record = await self._store.get(msg.turn_id)
        except _UNAVAILABLE as exc:
            log.warning("resume refused, Valkey unavailable: %s", type(exc).__name__)
            return _error(ErrorCode.UNAVAILABLE, "turn state store unavailable, retry",
                          org=who.org, turn_id=msg.turn_id, retryable=True)
        if record is None or (record.org, record.user) != (who.org, who.user):
            # Same answer for "expired" and "someone else's": ids leak nothing.
            return _error(ErrorCode.UNKNOWN_TURN, "no such turn for this user",
                          org=who.org, turn_id=msg.turn_id)
        return record

    async def agency(self, who: Identity, listener: Listener) -> Leave:
        """Approval cards and results of the user's background turns."""
        return await self._bus.agency(who.org, who.user, listener)

    async def observe(self, who: Identity, listener: Listener) -> Leave:
        """Turns the user's other sockets start (see `TurnObserved`)."""
        return await self._bus.observe(who.org, who.user, listener)

    async def cancel(self, record: TurnRecord, out: Outbox) -> None:
        """Ask whoever generates the turn to stop; the turn then ends as usual (its
        `turn_completed` says `stop_reason: "cancelled"`) on every socket following it."""
        try:
            await self._bus.cancel(TurnCancel(org_id=record.org, turn_id=record.turn_id))
        except _UNAVAILABLE as exc:
            log.warning("turn %s: cancel not sent: %s", record.turn_id, type(exc).__name__)
            out.send(_error(ErrorCode.UNAVAILABLE, "could not stop the turn, retry",
                            org=record.org, turn_id=record.turn_id, retryable=True))

    @staticmethod
    def observed_record(observed: TurnObserved) -> TurnRecord:
        return TurnRecord(turn_id=observed.turn_id, org=observed.org_id, user=observed.user_id,
                          client_id=observed.client_id,
                          conversation_id=observed.conversation_id,
                          deadline_at=observed.deadline_at)

    async def resume(self, record: TurnRecord, last_seq: int, out: Outbox) -> None:
        try:
            await TurnRelay(self._bus, record, out, last_seq, self._idle_s).run(
                first_frame=None)
        except _UNAVAILABLE as exc:
            log.warning("turn %s: resume failed: %s", record.turn_id, type(exc).__name__)
            out.send(_error(ErrorCode.UNAVAILABLE, "could not resume the turn, retry",
                            org=record.org, turn_id=record.turn_id, retryable=True))
