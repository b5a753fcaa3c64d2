"""One delivery of a model request: stream the answer, then report the outcome.

Ordering per turn (one client stream, `turns.events.<org>.<turn>`):
  delta seq 1..n  [turn_retry n+1, delta n+2.. on a later attempt]  -> result (last_seq)
The context service then sends the terminal event with seq last_seq+1.

Retries (JetStream is the only retry layer):
- A delivery after the first (crash, lapsed ack_wait, or our own nak) reads the last event of
  the turn from SB_TURN_EVENTS. If partial text had been streamed it first sends `turn_retry`
  so the client discards it, and continues the sequence after it.
- A retryable provider failure returns `Nak(backoff)` while the retry policy allows; otherwise
  the failure is published as the turn's result.
- While streaming, `in_progress` goes to JetStream every ack_wait/3, so only a dead or stuck
  process has its request redelivered.

Idempotency: the result's Nats-Msg-Id is (turn, iteration), so a re-published result is
dropped by JetStream; results published by this process are remembered (bounded) and a
redelivery of their request re-publishes instead of calling the provider again. A redelivery
whose turn already ended for the client (its last event is terminal) is acked and dropped.

Bounds: a call that streams is never cut for taking long, only for going quiet. Three
clocks: the first piece of text must come within `first_token_s` (restarted by every
`queued` notice, so waiting behind other requests for the local model does not count), each
next piece within `idle_s` of the previous one, and the turn's `deadline_at` (+ a small
grace) is a generous hard cap on the whole. The quiet clocks measure the provider, not this
process: a quiet timer that fires over `STALL_S` late means this process was stopped or
starved (SIGSTOP, a paused VM, a swap storm) while the pieces may be waiting in its socket, so
it grants the provider one fresh gap instead of failing the turn. A request that arrives past
its deadline never reaches the provider. While the request waits for a busy model the client
gets `queued` frames with its position (seq 0: they hold no place in the turn's text).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import ValidationError

from switchboard_common.bus import publish_command, publish_fast
from switchboard_common.envelope import utcnow
from switchboard_common.model import (
    ModelRequest,
    ModelResult,
    ProviderFailure,
    model_completed_subject,
    result_msg_id,
)
from switchboard_common.streams import RESULTS
from switchboard_common.turns import (
    TurnCancel,
    TurnQueued,
    TurnRetry,
    turn_cancel_subject,
    turn_events_subject,
)
from switchboard_llm_stream.adapters.turn_events import LastEvent, last_event
from switchboard_llm_stream.domain.canary import watched
from switchboard_llm_stream.domain.deltas import DeltaEncoder
from switchboard_llm_stream.domain.errors import ProviderError, deadline_passed, went_quiet
from switchboard_llm_stream.domain.provider import Completion, Provider, Queued
from switchboard_llm_stream.domain.retry import RetryPolicy
from switchboard_llm_stream.observe import ModelCall, model_call

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class Decision:
    """What the handler edge does with the message: ack, or nak with a delay."""

    nak_delay_s: float | None = None


ACK = Decision()

_RESULT_RETRY_S = 20.0
"""How long a result is published again while no stream answers (`bus.publish_command`)."""


class _Relay:
    """The token hot path: pieces of text to the client's stream, one `turns.Delta` per
    burst. A piece is queued and the relay task woken; the task runs once the provider's
    iterator waits for the network, and publishes everything queued by then as one delta.
    Paced tokens (a model's usual 10-50 ms apart) go out one per delta, as before, and no
    later; pieces that arrive together (one network read holding many events, or this
    process falling behind under load) go out together, so each costs no publish, no
    JetStream write and no WebSocket frame of its own. The seq stays contiguous."""

    __slots__ = ("_call", "_closing", "_encode", "_pending", "_publish", "_ready",
                 "_subject", "_task", "seq")

    def __init__(self, nc: NatsClient, subject: str, request: ModelRequest, seq: int,
                 call: ModelCall) -> None:
        self._publish = nc.publish
        self._subject = subject
        self._encode = DeltaEncoder(request.org_id, request.turn_id).encode
        self._call = call
        self._pending: list[str] = []
        self._ready = asyncio.Event()
        self._closing = False
        self.seq = seq
        self._task: asyncio.Task[None] | None = None

    def add(self, piece: str) -> None:
        self._pending.append(piece)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        self._ready.set()

    async def _run(self) -> None:
        ready, pending = self._ready, self._pending
        while True:
            await ready.wait()
            ready.clear()
            if pending:
                text = pending[0] if len(pending) == 1 else "".join(pending)
                pending.clear()
                self.seq += 1
                await self._publish(self._subject, self._encode(self.seq, text))
                if self._call.first_token_s is None:
                    self._call.first_token()
            if self._closing:
                return

    async def close(self) -> int:
        """Publishes what is still queued; the turn's last seq."""
        self._closing = True
        if self._task is not None:
            self._ready.set()
            await self._task
        return self.seq

    def abandon(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


STALL_S = 1.0
"""A quiet timer firing this late says the process, not the provider, stood still."""


class QuietClock:
    """"No next piece for `gap` seconds" for one call, ended through the call's timeout
    `window`; entered inside it (`async with window, QuietClock(window, gap)`), so it runs
    exactly while the window is open. Moving it is an assignment (the armed timer re-arms
    itself when it finds the clock moved), so a streamed piece costs no timer handle."""

    def __init__(self, window: asyncio.Timeout, gap: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._window = window
        self._gap = gap
        self._at = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self.fired = False

    async def __aenter__(self) -> QuietClock:
        self.restart(self._gap)
        self._handle = self._loop.call_at(self._at, self._check)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def restart(self, gap: float) -> None:
        self._gap = gap
        self._at = self._loop.time() + gap

    def _check(self) -> None:
        now = self._loop.time()
        if now - self._at > STALL_S:  # this process stood still: the provider gets a gap
            log.warning("event loop stalled %.1f s: the model's quiet clock restarts",
                        now - self._at)
            self._at = now + self._gap
        if now < self._at:
            self._handle = self._loop.call_at(self._at, self._check)
            return
        self.fired = True
        self._window.reschedule(now)


async def _closed(relay: _Relay | None, seq: int) -> int:
    """The last seq once what the relay holds is out (a failed call keeps its streamed text:
    the retry protocol counts on the seq of what the client saw)."""
    return seq if relay is None else await relay.close()


class ModelCalls:
    def __init__(self, broker: NatsBroker, provider: Provider, policy: RetryPolicy, *,
                 heartbeat_s: float, deadline_grace_s: float, first_token_s: float,
                 idle_s: float, remembered: int = 1024) -> None:
        self._broker = broker
        self._nc = broker.connection
        self._js = self._nc.jetstream()
        self._provider = provider
        self._policy = policy
        self._heartbeat_s = heartbeat_s
        self._grace_s = deadline_grace_s
        self._first_token_s = first_token_s
        self._idle_s = idle_s
        self._published: _Lru[tuple[str, int], ModelResult] = _Lru(remembered)
        self._retry_reasons: _Lru[tuple[str, int], str] = _Lru(remembered)
        self._cancelled: _Lru[str, bool] = _Lru(remembered)
        self._sent: _Lru[str, LastEvent] = _Lru(remembered)
        """The last client event this replica published per turn: a retry continues after
        it even when SB_TURN_EVENTS no longer has it."""
        self._running: dict[tuple[str, int], asyncio.Future[Decision]] = {}
        """Calls this replica runs now, by (turn, iteration)."""

    async def listen_for_cancels(self) -> None:
        """The user's stop button (core NATS, every replica hears it): the replica streaming
        the turn stops at the next piece of text, keeps what was streamed and calls no tool.
        A cancel that reaches no replica streaming the turn changes nothing."""
        await self._nc.subscribe(turn_cancel_subject("*"), cb=self._on_cancel)

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            self._cancelled.put(TurnCancel.model_validate_json(msg.data).turn_id, True)
        except ValidationError:
            log.warning("unreadable cancel on %s dropped", msg.subject)

    async def run(self, request: ModelRequest, attempt: int,
                  heartbeat: Callable[[], Awaitable[None]]) -> Decision:
        """One delivery of a model request: stream the call, publish its result, and say
        how the delivery ends."""
        key = (request.turn_id, request.iteration)
        if (running := self._running.get(key)) is not None:
            # Delivered again while this replica still runs it (NATS was away longer than
            # ack_wait, and the heartbeats with it): a second attempt at once would stream
            # beside the first, both numbering from the same last event. This delivery
            # waits for the running one and ends as it did.
            log.info("turn %s iteration %d delivered again while running; waiting for it",
                     request.turn_id, request.iteration)
            beat = asyncio.create_task(self._keep_alive(heartbeat))
            try:
                return await asyncio.shield(running)
            finally:
                beat.cancel()
        running = asyncio.get_running_loop().create_future()
        self._running[key] = running
        try:
            decision = await self._attempt(request, attempt, heartbeat)
        except asyncio.CancelledError:
            running.cancel()
            raise
        except BaseException as exc:
            running.set_exception(exc)
            running.exception()  # retrieved: no warning when nobody waited
            raise
        else:
            running.set_result(decision)
            return decision
        finally:
            del self._running[key]

    async def _attempt(self, request: ModelRequest, attempt: int,
                       heartbeat: Callable[[], Awaitable[None]]) -> Decision:
        key = (request.turn_id, request.iteration)
        if (done := self._published.get(key)) is not None:
            await self._publish_result(done)  # same msg id: JetStream drops a duplicate
            return ACK
        subject = turn_events_subject(request.org_id, request.turn_id)
        to_client = request.purpose == "answer"  # a background summary streams nothing
        seq = 0
        if to_client:
            # Read even on a first delivery: a consumer recreated by an operator restarts
            # num_delivered at 1, and a later tool-loop iteration continues the turn's seq.
            last = await last_event(self._js, subject)
            mine = self._sent.get(request.turn_id)
            if mine is not None and mine.seq > last.seq and not last.terminal:
                last = mine  # the stream lost it (a restarted NATS declares it again empty)
            if last.terminal:
                log.info("turn %s already ended for the client; request dropped",
                         request.turn_id)
                return ACK
            seq = max(last.seq, request.seq_base)
            if last.type == "delta" and (attempt > 1 or request.iteration == 0):
                # Partial text of an earlier attempt is on screen: the client must drop it.
                seq += 1
                reason = self._retry_reasons.pop(key) or "redelivered"
                await publish_fast(self._nc, subject, TurnRetry(
                    org_id=request.org_id, turn_id=request.turn_id, seq=seq, attempt=attempt,
                    reason=reason))
                self._sent.put(request.turn_id, LastEvent(seq, "turn_retry"))
        started_at = seq

        time_left = (request.deadline_at - utcnow()).total_seconds()
        if time_left <= 0:
            await self._publish_result(self._result(request, attempt, seq,
                                                    failure=deadline_passed()))
            return ACK

        with model_call(self._provider.name, request) as call:
            completion, failure, seq = await self._stream(
                request, subject if to_client else None, seq, time_left, heartbeat, call)
            call.finished(completion, failure)
        if seq > started_at:
            self._sent.put(request.turn_id, LastEvent(seq, "delta"))
        if failure is not None:
            left = (request.deadline_at - utcnow()).total_seconds()
            delay = self._policy.retry_after(failure, attempt, left)
            if delay is not None:
                log.warning("turn %s attempt %d failed (%s); retry in %.2fs",
                            request.turn_id, attempt, failure.code, delay)
                self._retry_reasons.put(key, failure.code.value)
                return Decision(nak_delay_s=delay)
            log.warning("turn %s failed after %d attempt(s): %s", request.turn_id, attempt,
                        failure.code)
            await self._publish_result(self._result(request, attempt, seq, failure=failure))
            return ACK
        assert completion is not None
        result = self._result(request, attempt, seq, completion=completion)
        await self._publish_result(result)
        self._published.put(key, result)
        return ACK

    async def _stream(self, request: ModelRequest, subject: str | None, seq: int,
                      time_left: float, heartbeat: Callable[[], Awaitable[None]],
                      call: ModelCall) -> tuple[Completion | None, ProviderFailure | None, int]:
        cancelled = self._cancelled.get
        if cancelled(request.turn_id):  # stopped before this call (e.g. during a tool)
            return Completion(model=request.model or "", stop_reason="cancelled"), None, seq
        loop = asyncio.get_running_loop()
        waiting_first = True
        relay = None if subject is None else _Relay(self._nc, subject, request, seq, call)
        beat = asyncio.create_task(self._keep_alive(heartbeat))
        window = asyncio.timeout_at(loop.time() + time_left + self._grace_s)
        quiet = QuietClock(window, self._first_token_s)
        try:
            async with window, quiet, watched(self._provider, request) as text:
                async for piece in text:
                    if isinstance(piece, Queued):
                        quiet.restart(self._first_token_s)
                        await self._queued(request, subject, piece)
                        continue
                    waiting_first = False
                    quiet.restart(self._idle_s)
                    if relay is not None:
                        relay.add(piece)
                        if cancelled(request.turn_id):
                            break
            seq = await _closed(relay, seq)
            if cancelled(request.turn_id):
                # A copy: a provider thread may still be finishing the abandoned completion.
                return dataclasses.replace(
                    text.completion, text_parts=list(text.completion.text_parts),
                    stop_reason="cancelled", tool_calls=[]), None, seq
            return text.completion, None, seq
        except ProviderError as exc:
            return None, exc.failure, await _closed(relay, seq)
        except TimeoutError:
            if not window.expired():
                raise
            seq = await _closed(relay, seq)
            if not quiet.fired:
                return None, deadline_passed(), seq
            return None, went_quiet(first=waiting_first), seq
        finally:
            beat.cancel()
            if relay is not None:
                relay.abandon()

    async def _queued(self, request: ModelRequest, subject: str | None, notice: Queued
                      ) -> None:
        if subject is not None:
            await publish_fast(self._nc, subject, TurnQueued(
                org_id=request.org_id, turn_id=request.turn_id, position=notice.position))

    async def _keep_alive(self, heartbeat: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            with contextlib.suppress(Exception):  # a missed beat only risks a redelivery
                await heartbeat()

    def _result(self, request: ModelRequest, attempt: int, last_seq: int, *,
                completion: Completion | None = None,
                failure: ProviderFailure | None = None) -> ModelResult:
        done = completion or Completion(model=request.model or "")
        return ModelResult(
            org_id=request.org_id, turn_id=request.turn_id,
            user_id=request.user_id, client_id=request.client_id,
            conversation_id=request.conversation_id, iteration=request.iteration,
            provider=self._provider.name, model=done.model, text=done.text,
            stop_reason=done.stop_reason, usage=done.usage, last_seq=last_seq,
            attempts=attempt, error=failure, purpose=request.purpose, meta=request.meta,
            tool_calls=done.tool_calls, canary_hit=done.flagged,
            request=request if done.tool_calls else None)

    async def _publish_result(self, result: ModelResult) -> None:
        # Streamed and paid for: worth waiting for a server that is declaring its streams
        # again (its model request may be gone with the store it lost).
        await publish_command(self._broker, result, model_completed_subject(result.org_id),
                              msg_id=result_msg_id(result.turn_id, result.iteration),
                              stream=RESULTS.name, retry_s=_RESULT_RETRY_S)
