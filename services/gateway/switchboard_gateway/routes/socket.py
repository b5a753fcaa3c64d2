"""`/ws`: one Session per socket. A reader loop validates client frames; each turn runs in
its own task; one writer task at a time owns the socket's send side, so frames from
concurrent turns never interleave mid-frame and a slow client never blocks the bus. The
writer exists only while frames flow: an idle socket holds no task but its reader."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from pydantic import ValidationError
from redis.exceptions import RedisError

from switchboard_common.actions import ActionDecided, ActionRecord, describe
from switchboard_common.credentials import Scope
from switchboard_common.errors import ErrorCode
from switchboard_common.metrics import OPEN_SOCKETS
from switchboard_common.turns import TurnObserved
from switchboard_gateway.adapters.events import Leave
from switchboard_gateway.adapters.limits import Limiter, SocketCounter
from switchboard_gateway.deps import source_address
from switchboard_gateway.domain.access import Principal
from switchboard_gateway.domain.auth import Unauthorized, origin_allowed
from switchboard_gateway.domain.identity import Identity
from switchboard_gateway.domain.protocol import (
    ActionDecision,
    ActionDecisions,
    Cancel,
    ErrorFrame,
    ProtocolError,
    Resume,
    UserMessage,
    Watch,
    parse_client_message,
)
from switchboard_gateway.handlers.actions import ActionGate
from switchboard_gateway.handlers.admission import SocketAdmission, refusal_frame
from switchboard_gateway.handlers.auth import Authenticator, TooManyFailures
from switchboard_gateway.handlers.clients import ClientGate
from switchboard_gateway.handlers.turns import Claim, TurnService
from switchboard_gateway.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter()

_CLEANUP_S = 5.0
_WRITER_LINGER_S = 10.0
"""How long a socket's writer waits for the next frame before it ends: a streaming turn's
frames (tens of ms apart) reuse one writer (a task per frame cost ~30% more gateway CPU per
token), and a socket idle for longer holds no task."""
_UNAVAILABLE = (RedisError, NatsError, OSError, TimeoutError)


async def socket(ws: WebSocket) -> None:
    """Browsers authenticate with a one-time `ticket` (from `POST /v1/auth/ws-ticket`: they
    cannot set headers, and a long-lived secret in a URL ends up in logs); other clients may
    send `Authorization: Bearer`. The Origin check comes first, before the upgrade: a page on
    another site must not even reach authentication (closing before accept answers 403).

    A plain Starlette route, not FastAPI's: what it needs is on `app.state` and in three
    query parameters, and FastAPI's dependency resolution kept its exit stacks and solved
    values for the socket's whole life (~6 KB per idle socket)."""
    state = ws.app.state
    turns: TurnService = state.turns
    settings: Settings = state.settings
    auth: Authenticator = state.auth
    limiter: Limiter = state.limits
    sockets: SocketCounter = state.sockets
    query = ws.query_params
    ticket, org, user = query.get("ticket"), query.get("org"), query.get("user")
    origin = ws.headers.get("origin")
    if not origin_allowed(origin, ws.headers.get("host"), settings.allowed_origins):
        log.warning("WebSocket from origin %r refused (not in GATEWAY_ALLOWED_ORIGINS)", origin)
        await ws.close(status.WS_1008_POLICY_VIOLATION)
        return
    try:
        credential, me = await auth.authenticate(
            source_address(ws), ws.headers.get("authorization"), org, user, ticket=ticket)
        if not me.has_scope(Scope.CHAT):
            raise Unauthorized("this API key lacks the 'chat' scope the WebSocket needs")
    except (Unauthorized, TooManyFailures) as exc:
        # Accept, say why in a frame, close with 1008: a refused handshake would give the
        # client no reason at all.
        await _refuse(ws, ErrorFrame(code=ErrorCode.UNAUTHORIZED, message=str(exc),
                                     retryable=isinstance(exc, TooManyFailures)),
                      status.WS_1008_POLICY_VIOLATION)
        return
    except _UNAVAILABLE as exc:
        log.warning("WebSocket refused, cannot check the caller: %s", type(exc).__name__)
        await _refuse(ws, ErrorFrame(code=ErrorCode.UNAVAILABLE, retryable=True,
                                     message="cannot check your credential now, retry"),
                      status.WS_1013_TRY_AGAIN_LATER)
        return
    who = Identity(org=me.org, user=me.user.id)
    try:
        limits = await limiter.org_limits(who.org)
    except _UNAVAILABLE:
        limits = settings.limits  # the deployment defaults still bound this socket
    if (refused := sockets.open(who, limits.sockets_per_user)) is not None:
        await ws.accept()
        await ws.send_text(refusal_frame(refused, who.org))
        await ws.close(status.WS_1013_TRY_AGAIN_LATER)
        return
    admission = SocketAdmission(limiter, who, limits.concurrent_turns_socket,
                                settings.turn_deadline_s)
    session = Session(ws, me, turns, settings.max_message_bytes, settings.max_outbox_frames,
                      state.gate, state.actions, admission, settings.max_json_depth)
    unwatch = auth.watch(credential, session.revoked)
    try:
        await ws.accept()
        with OPEN_SOCKETS.track_inprogress():
            await session.run()
    finally:
        unwatch()
        sockets.close(who)


router.add_websocket_route("/ws", socket)


async def _refuse(ws: WebSocket, frame: ErrorFrame, code: int) -> None:
    await ws.accept()
    await ws.send_text(frame.model_dump_json())
    await ws.close(code)


class Session:
    # A thousand idle sockets hold a thousand of these: slots, and no outbox until a frame.
    __slots__ = ("_actions", "_admission", "_closing", "_following", "_gate", "_idle",
                 "_max_depth", "_max_outbox", "_max_text", "_me", "_observer", "_outbox",
                 "_quiet_since", "_tasks", "_turns", "_wake", "_watching", "_who", "_writer",
                 "_ws")

    def __init__(self, ws: WebSocket, me: Principal, turns: TurnService, max_text_bytes: int,
                 max_outbox: int, gate: ClientGate, actions: ActionGate | None = None,
                 admission: SocketAdmission | None = None, max_depth: int = 32) -> None:
        self._ws = ws
        self._admission = admission
        self._max_depth = max_depth
        self._actions = actions
        self._gate = gate
        self._me = me
        self._who = Identity(org=me.org, user=me.user.id)
        self._turns = turns
        self._max_text = max_text_bytes
        self._max_outbox = max_outbox
        self._outbox: deque[str] | None = None  # while a writer runs
        self._writer: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[bool] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._quiet_since = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._following: set[str] = set()
        self._closing = False
        # What this socket watches (client, conversation) for turns other sockets start.
        self._watching: tuple[str, str] | None = None
        self._observer: Leave | None = None

    def send(self, text: str) -> None:
        """The Outbox the relays write to: runs once per token, so it only enqueues."""
        if self._closing:
            return
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        elif len(outbox) >= self._max_outbox:
            self._closing = True
            log.warning("org=%s user=%s: client too slow, %d frames queued; closing",
                        self._who.org, self._who.user, self._max_outbox)
            self._spawn(self._ws.close(status.WS_1013_TRY_AGAIN_LATER))
            return
        outbox.append(text)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        elif self._wake is not None and not self._wake.done():
            self._wake.set_result(True)

    def revoked(self) -> None:
        """The credential this socket opened with was revoked (sign-out, key revocation,
        on any replica): say so, then close once the frames before it are written."""
        self.send(ErrorFrame(org_id=self._who.org, code=ErrorCode.UNAUTHORIZED,
                             message="credential revoked; sign in again").model_dump_json())
        self._closing = True
        self._spawn(self._close_after_flush(status.WS_1008_POLICY_VIOLATION))

    async def _close_after_flush(self, code: int) -> None:
        if self._writer is not None:
            await asyncio.wait({self._writer}, timeout=_CLEANUP_S)
        await self._ws.close(code)

    async def run(self) -> None:
        try:
            # Background turns' cards reach every socket of their owner (the agency inbox).
            agency = await self._turns.agency(self._who, self._on_agency)
        except _UNAVAILABLE as exc:
            agency = None
            log.warning("agency frames unavailable, NATS down: %s", type(exc).__name__)
        try:
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw = message.get("text")
                self._handle(raw if raw is not None else message.get("bytes") or b"")
        except WebSocketDisconnect:
            pass
        finally:
            # The turns keep running server-side; this socket just stops following them.
            tasks = (*self._tasks, *((self._writer,) if self._writer is not None else ()))
            for task in tasks:
                task.cancel()
            # Bounded: a dependency that swallows cancellation must not pin the socket.
            if tasks:
                await asyncio.wait(tasks, timeout=_CLEANUP_S)
            for leave in (self._observer, agency):
                if leave is not None:
                    with contextlib.suppress(*_UNAVAILABLE):
                        await leave()

    def _on_agency(self, msg: Msg) -> None:
        self.send(msg.data.decode())

    async def _write(self) -> None:
        """Writes what waits, in order, then waits for more (see `_WRITER_LINGER_S`) and
        ends; `send` starts the next one. No await between finding the outbox empty and
        clearing `_writer`, so no frame is stranded. Once the socket is closing it ends as
        soon as the outbox is written (`_close_after_flush` waits for that)."""
        loop = asyncio.get_running_loop()
        outbox = self._outbox
        assert outbox is not None  # `send` made it before starting this writer
        try:
            while True:
                while outbox:
                    await self._ws.send_text(outbox.popleft())
                if self._closing:
                    return
                self._quiet_since = loop.time()
                if self._idle is None:
                    # One timer per linger period, not per frame: a timer armed and cancelled
                    # per frame cost more than the frame's own write.
                    self._idle = loop.call_later(_WRITER_LINGER_S, self._check_idle)
                self._wake = wake = loop.create_future()
                if not await wake and not outbox:
                    return
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The client went away; the reader sees the disconnect. Queue nothing more.
            self._closing = True
        finally:
            if self._idle is not None:
                self._idle.cancel()
            self._writer = self._wake = self._idle = None
            if not outbox:
                self._outbox = None

    def _check_idle(self) -> None:
        """The writer's timer: end it once nothing was written for `_WRITER_LINGER_S`."""
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self._quiet_since
        if quiet < _WRITER_LINGER_S:
            self._idle = loop.call_later(_WRITER_LINGER_S - quiet, self._check_idle)
            return
        self._idle = None
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(False)

    def _handle(self, raw: str | bytes) -> None:
        try:
            message = parse_client_message(raw, self._max_text, self._max_depth)
        except ProtocolError as exc:
            # Once per bad frame, naming the problem but never the content.
            log.warning("org=%s user=%s: bad client frame (%s): %s", self._who.org,
                        self._who.user, exc.code, exc.message)
            self.send(exc.frame(self._who.org))
            return
        if isinstance(message, UserMessage):
            if self._admission is not None and (
                    refused := self._admission.reserve(message)) is not None:
                self.send(refused)
                return
            self._spawn(self._start(message))
        elif isinstance(message, Resume):
            self._spawn(self._resume(message))
        elif isinstance(message, ActionDecision | ActionDecisions):
            items = message.decisions if isinstance(message, ActionDecisions) else [message]
            self._spawn(self._decide(items))
        elif isinstance(message, Cancel):
            self._spawn(self._cancel(message))
        elif isinstance(message, Watch):
            self._spawn(self._watch(message))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, msg: UserMessage) -> None:
        # Checked on every message, before the key is claimed: a refused message starts
        # nothing, and a client unassigned since is refused even on a re-send.
        admitted = finished = False
        try:
            refused = await self._gate.admit(self._me, msg)
            if refused is not None:
                self.send(refused)
                return
            # Admitted and claimed in one round trip; a refused turn claims nothing.
            claim = self._turns.new_claim(self._who, msg)
            if self._admission is not None:
                admitted, frames = await self._admission.admit(msg, claim)
                for frame in frames:
                    self.send(frame)
                if not admitted:
                    return
            finished = await self._run(msg, claim)
        finally:
            if self._admission is not None:
                await self._admission.done(msg, release=admitted and finished)

    async def _run(self, msg: UserMessage, claim: Claim) -> bool:
        """Claim (unless the admission did) and relay the turn; True once it ended for this
        socket (not cancelled)."""
        claimed = await self._turns.claim(self._who, msg, claim)
        if isinstance(claimed, str):
            self.send(claimed)
            return True
        record, duplicate = claimed
        if record.turn_id in self._following:
            # Already streaming to this socket: acknowledge, do not attach a second time.
            self.send(self._turns.started_frame(record, msg, duplicate=True))
            return False
        self._following.add(record.turn_id)
        try:
            await self._turns.run_turn(self._who, record, msg, duplicate, self)
        finally:
            self._following.discard(record.turn_id)
        return True

    async def _resume(self, msg: Resume) -> None:
        record = await self._turns.owned_turn(self._who, msg)
        if isinstance(record, str):
            self.send(record)
            return
        if record.turn_id in self._following:
            return  # this socket already follows it; nothing was missed
        self._following.add(record.turn_id)
        try:
            await self._turns.resume(record, msg.last_seq, self)
        finally:
            self._following.discard(record.turn_id)

    async def _cancel(self, msg: Cancel) -> None:
        record = await self._turns.owned_turn(self._who, msg)
        if isinstance(record, str):
            self.send(record)
            return
        await self._turns.cancel(record, self)

    async def _watch(self, msg: Watch) -> None:
        """Only the user's own turns are announced to them, the same rule as `resume`."""
        if msg.conversation_id is None:
            self._watching = None
            return
        self._watching = (msg.client_id, msg.conversation_id)
        if self._observer is None:
            try:
                self._observer = await self._turns.observe(self._who, self._on_observed)
            except _UNAVAILABLE as exc:
                log.warning("watch refused, NATS unavailable: %s", type(exc).__name__)
                self.send(ErrorFrame(org_id=self._who.org, code=ErrorCode.UNAVAILABLE,
                                     message="cannot follow other tabs now, retry",
                                     retryable=True).model_dump_json())

    def _on_observed(self, msg: Msg) -> None:
        try:
            observed = TurnObserved.model_validate_json(msg.data)
        except ValidationError:
            return
        if (observed.client_id, observed.conversation_id) != self._watching:
            return
        record = self._turns.observed_record(observed)
        if record.turn_id in self._following:
            return  # this socket started it (or follows it already)
        self.send(msg.data.decode())
        self._following.add(record.turn_id)

        async def relay() -> None:
            try:
                await self._turns.resume(record, 0, self)
            finally:
                self._following.discard(record.turn_id)

        self._spawn(relay())

    async def _decide(self, items: list[ActionDecision]) -> None:
        """One `action_decided` frame per accepted decision, or an `error` naming the action
        (`action_already_decided`, `action_expired`, `forbidden`, ...). The outcome of the
        execution also reaches sockets following the turn as an `action_result` frame."""
        if self._actions is None:
            return
        try:
            me = await self._actions.refresh(self._me)
        except _UNAVAILABLE as exc:
            log.warning("decision refused, directory unavailable: %s", type(exc).__name__)
            self.send(ErrorFrame(org_id=self._who.org, code=ErrorCode.UNAVAILABLE,
                                 message="directory unavailable, retry",
                                 retryable=True).model_dump_json())
            return
        if me is None:
            self.send(ErrorFrame(org_id=self._who.org, code=ErrorCode.UNAUTHORIZED,
                                 message="your user no longer exists in this org"
                                 ).model_dump_json())
            return
        for item in items:
            reply = await self._actions.decide(me, item.action_id, item.decision == "approve",
                                               item.arguments, item.reason)
            if reply.ok and reply.record is not None:
                self.send(decided_frame(reply.record))
            else:
                self.send(ErrorFrame(
                    org_id=self._who.org, code=reply.code or ErrorCode.INTERNAL,
                    message=reply.message, action_id=item.action_id,
                    retryable=reply.code is ErrorCode.UNAVAILABLE).model_dump_json())


def decided_frame(record: ActionRecord) -> str:
    return ActionDecided(org_id=record.org_id, turn_id=record.turn_id,
                         action_id=record.action_id, client_id=record.client_id,
                         tool=record.tool, status=record.status, message=describe(record),
                         output=record.output, arguments=record.arguments).model_dump_json()
