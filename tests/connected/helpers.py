"""Helpers for connected tests: read what a service published, as the next service would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig


@asynccontextmanager
async def nats_client(url: str) -> AsyncIterator[Client]:
    nc = await nats.connect(url)
    try:
        yield nc
    finally:
        await nc.close()


class Collector:
    """Collects core-NATS messages on a subject (e.g. a turn's client events)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def handle(self, msg: Msg) -> None:
        self.items.append(json.loads(msg.data))
        self._changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()
        return self.items


async def fetch_one(nc: Client, stream: str, subject: str, durable: str,
                    timeout: float = 10.0) -> Msg:
    """Pull one message from a stream as a (test-owned) durable consumer would, and ack it."""
    js = nc.jetstream()
    sub = await js.pull_subscribe(subject, durable=durable, stream=stream,
                                  config=ConsumerConfig(ack_wait=30))
    msgs = await sub.fetch(1, timeout=timeout)
    await msgs[0].ack()
    await sub.unsubscribe()
    return msgs[0]
