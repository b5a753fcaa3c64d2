"""Start-up and shutdown pieces shared by the FastStream services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from faststream import FastStream

from switchboard_common.telemetry import settle_memory

log = logging.getLogger(__name__)


def run_periodically(app: FastStream, interval_s: float, work: Callable[[], Awaitable[None]],
                     what: str) -> None:
    """Run `work` every `interval_s` from after start-up until shutdown begins. A failing run
    is logged and the next one still happens (a sweeper must outlive a Valkey hiccup)."""
    tasks: list[asyncio.Task[None]] = []

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await work()
            except Exception:
                log.exception("%s failed", what)

    @app.after_startup
    async def start() -> None:
        tasks.append(asyncio.create_task(loop()))

    @app.on_shutdown
    async def stop() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def settle_after_startup(app: FastStream) -> None:
    """Once everything has started, keep start-up objects out of the GC (telemetry)."""
    app.after_startup(settle_memory)
