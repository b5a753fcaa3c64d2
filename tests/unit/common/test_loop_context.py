"""LoopContext resolves handler parameters on the event loop: FastStream's own Context sends
each one through a worker thread per message (docs/performance.md)."""

from __future__ import annotations

import threading
from typing import Annotated

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from switchboard_common.bus import LoopContext, Message


async def test_handler_parameters_resolve_without_a_thread() -> None:
    broker = NatsBroker()
    broker.context.set_global("answer", 42)
    seen: list[tuple[int, str, int]] = []

    @broker.subscriber("loop.context")
    async def handler(body: str, answer: Annotated[int, LoopContext("answer")],
                      message: Message) -> None:
        seen.append((answer, message.raw_message.subject, threading.get_ident()))

    async with TestNatsBroker(broker) as br:
        with pytest.MonkeyPatch.context() as mp:
            # Any trip to anyio's worker threads fails the handler.
            mp.setattr("anyio.to_thread.run_sync", _no_threads)
            await br.publish("hi", "loop.context")
    assert seen == [(42, "loop.context", threading.get_ident())]


async def _no_threads(*args: object, **kwargs: object) -> None:
    raise AssertionError("a handler parameter was resolved in a worker thread")
