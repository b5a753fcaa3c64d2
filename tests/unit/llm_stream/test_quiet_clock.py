"""The model's quiet clock measures the provider, not this process: a timer that fires late
because the event loop stood still (SIGSTOP, a paused VM) grants one fresh gap instead of
failing a turn whose pieces may be waiting in the socket."""

from __future__ import annotations

import asyncio
import time

import pytest

from switchboard_llm_stream.calls import STALL_S, QuietClock


async def test_a_quiet_provider_ends_the_call_on_time() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as window, QuietClock(window, 0.2) as quiet:
            await asyncio.sleep(5)
    assert quiet.fired
    assert 0.2 <= loop.time() - started < 1.0


async def test_each_piece_moves_the_clock() -> None:
    async with asyncio.timeout(None) as window, QuietClock(window, 0.2) as quiet:
        for _ in range(6):  # 0.6 s in all, never 0.2 s without a piece
            await asyncio.sleep(0.1)
            quiet.restart(0.2)
    assert not quiet.fired


async def test_a_stalled_event_loop_grants_the_provider_a_fresh_gap() -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as window, QuietClock(window, 0.2) as quiet:
            time.sleep(0.2 + STALL_S + 0.3)  # noqa: ASYNC251 - the whole process stands still
            await asyncio.sleep(0.05)  # the late timer runs
            assert not quiet.fired  # no piece could have been read: not the provider's fault
            await asyncio.sleep(5)  # now the provider really is quiet
    assert quiet.fired
