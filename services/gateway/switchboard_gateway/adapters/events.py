"""The gateway's side of the bus: publish turn commands, follow a turn's stream events live
(core NATS) and replay them from SB_TURN_EVENTS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from switchboard_common.actions import agency_subject
from switchboard_common.bus import publish_command, publish_fast
from switchboard_common.streams import TURN_EVENTS, TURNS
from switchboard_common.turns import (
    TurnCancel,
    TurnObserved,
    TurnRequest,
    turn_cancel_subject,
    turn_msg_id,
    turn_observed_subject,
    turn_requested_subject,
)

log = logging.getLogger(__name__)

_REPLAY_BATCH = 512

Listener = Callable[[Msg], None]
"""Called for every message of a shared subject; it must not block (a socket's `send`)."""
Leave = Callable[[], Awaitable[None]]


@dataclass
class _Shared:
    subject: str
    ready: asyncio.Future[Subscription]
    listeners: set[Listener] = field(default_factory=set)

    async def deliver(self, msg: Msg) -> None:
        for listener in tuple(self.listeners):
            try:
                listener(msg)
            except Exception:  # one socket's failure must not starve the others
                log.exception("listener of %s failed", self.subject)


class SharedSubscriptions:
    """One core NATS subscription per subject for every socket of this process that wants
    it, instead of one per socket: each subscription holds a task and a queue of its own
    (~5 KB of an idle socket's memory), and all of a user's sockets want the same subjects."""

    def __init__(self, nc: Callable[[], NatsClient]) -> None:
        self._nc = nc
        self._shared: dict[str, _Shared] = {}

    async def join(self, subject: str, listener: Listener) -> Leave:
        shared = self._shared.get(subject)
        if shared is None:
            shared = _Shared(subject, asyncio.get_running_loop().create_future())
            self._shared[subject] = shared
            shared.listeners.add(listener)
            try:
                shared.ready.set_result(await self._nc().subscribe(subject, cb=shared.deliver))
            except BaseException as exc:
                # Whoever joined meanwhile learns it too, and the next join tries again.
                del self._shared[subject]
                shared.ready.set_exception(exc)
                shared.ready.exception()  # retrieved: no "never retrieved" warning
                raise
        else:
            shared.listeners.add(listener)
            try:
                await asyncio.shield(shared.ready)
            except BaseException:
                shared.listeners.discard(listener)
                raise

        async def leave() -> None:
            shared.listeners.discard(listener)
            if not shared.listeners and self._shared.get(subject) is shared:
                del self._shared[subject]
                await shared.ready.result().unsubscribe()

        return leave


class TurnBus:
    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker
        self._shared = SharedSubscriptions(lambda: self._nc)

    @property
    def _nc(self) -> NatsClient:
        return self._broker.connection

    @property
    def connected(self) -> bool:
        try:
            return bool(self._nc.is_connected)
        except Exception:  # the broker has no connection yet (or any more)
            return False

    async def publish_turn(self, request: TurnRequest) -> bool:
        """Send the turn command; False when JetStream had it already (same key, still
        inside the stream's duplicate window)."""
        ack = await publish_command(
            self._broker, request, turn_requested_subject(request.org_id),
            msg_id=turn_msg_id(request.org_id, request.user_id, request.idempotency_key),
            stream=TURNS.name)
        return not ack.duplicate

    async def cancel(self, cancel: TurnCancel) -> None:
        await publish_fast(self._nc, turn_cancel_subject(cancel.org_id), cancel)

    async def announce(self, observed: TurnObserved) -> None:
        """Tell the user's other sockets (on any gateway replica) about a new turn."""
        await publish_fast(self._nc, turn_observed_subject(observed.org_id, observed.user_id),
                           observed)

    async def observe(self, org: str, user: str, listener: Listener) -> Leave:
        """Turns any socket of the user starts; one subscription per user and process."""
        return await self._shared.join(turn_observed_subject(org, user), listener)

    async def agency(self, org: str, user: str, listener: Listener) -> Leave:
        """Frames of the user's background turns (approval cards, results): no turn stream
        of theirs is followed by a socket. One subscription per user and process."""
        return await self._shared.join(agency_subject(org, user), listener)

    async def follow(self, subject: str, cb: Callable[[Msg], Awaitable[None]]) -> Subscription:
        """Live events. nats-py sends SUB before any later PUB on this connection, and the
        server handles one connection's protocol in order: subscribe, then publish the
        TurnRequest, and no event of the turn can be missed."""
        return await self._nc.subscribe(subject, cb=cb)

    async def replay(self, subject: str) -> AsyncGenerator[list[bytes], None]:
        """Events already stored for `subject`, oldest first, in batches. An ephemeral pull
        consumer without acks: reading is free of side effects and the server removes the
        consumer when we are done (or when we vanish)."""
        js = self._nc.jetstream()
        try:
            info = await self._nc.jsm().add_consumer(TURN_EVENTS.name, ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
                filter_subject=subject, inactive_threshold=30.0, mem_storage=True))
        except NotFoundError:
            # A restarted server lost the (memory) stream and the services have not declared
            # it again yet: nothing is kept, what comes next arrives live.
            log.info("replay of %s: %s not there (yet)", subject, TURN_EVENTS.name)
            return
        name = info.name
        try:
            pending = info.num_pending or 0
            if pending == 0:
                return
            sub = await js.pull_subscribe_bind(consumer=name, stream=TURN_EVENTS.name)
            try:
                while pending > 0:
                    try:
                        msgs = await sub.fetch(min(pending, _REPLAY_BATCH), timeout=2.0)
                    except NatsTimeout:
                        break  # expired under us (max_age): nothing more to read
                    yield [m.data for m in msgs]
                    pending = msgs[-1].metadata.num_pending
            finally:
                await sub.unsubscribe()
        finally:
            with contextlib.suppress(NotFoundError):
                await self._nc.jsm().delete_consumer(TURN_EVENTS.name, name)
