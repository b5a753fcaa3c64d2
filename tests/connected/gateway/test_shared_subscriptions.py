"""One NATS subscription per subject for all of a gateway's sockets (agency frames and
observed turns of a user), on a real NATS server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from switchboard_gateway.adapters.events import SharedSubscriptions


class _Counting:
    """The NATS client, counting the subscriptions asked of it."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.subscribed = 0

    async def subscribe(self, subject: str, cb: Callable[[Msg], Awaitable[None]]
                        ) -> Subscription:
        self.subscribed += 1
        return await self.nc.subscribe(subject, cb=cb)


async def _settle(nc: NatsClient) -> None:
    await nc.flush()
    await asyncio.sleep(0.1)


async def test_sockets_of_one_user_share_one_subscription(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    counting = _Counting(nc)
    shared = SharedSubscriptions(lambda: cast(Any, counting))
    got: dict[str, list[bytes]] = {"a": [], "b": [], "c": []}

    def broken(msg: Msg) -> None:
        raise RuntimeError("this socket's send failed")

    try:
        leave_a, leave_b, leave_broken = await asyncio.gather(
            shared.join("agency.o1.u1", lambda m: got["a"].append(m.data)),
            shared.join("agency.o1.u1", lambda m: got["b"].append(m.data)),
            shared.join("agency.o1.u1", broken))
        leave_c = await shared.join("agency.o1.u2", lambda m: got["c"].append(m.data))
        assert counting.subscribed == 2  # one per subject, not one per socket
        await nc.publish("agency.o1.u1", b"card")
        await _settle(nc)
        assert got == {"a": [b"card"], "b": [b"card"], "c": []}

        await leave_a()
        await leave_broken()
        await nc.publish("agency.o1.u1", b"second")
        await _settle(nc)
        assert got["a"] == [b"card"] and got["b"] == [b"card", b"second"]

        await leave_b()  # the last one: the subscription goes
        await nc.publish("agency.o1.u1", b"third")
        await _settle(nc)
        assert got["b"] == [b"card", b"second"]
        leave_again = await shared.join("agency.o1.u1", lambda m: got["a"].append(m.data))
        assert counting.subscribed == 3
        await nc.publish("agency.o1.u1", b"fourth")
        await _settle(nc)
        assert got["a"] == [b"card", b"fourth"]
        await leave_again()
        await leave_c()
    finally:
        await nc.close()
