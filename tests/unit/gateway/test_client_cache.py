"""The turn gate's cache of client records (adapters/client_cache.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from switchboard_common.directory import Client
from switchboard_gateway.adapters.client_cache import ClientCache


class Directory:
    """Counts reads; `gate` (when set) holds a read until released."""

    def __init__(self) -> None:
        self.clients: dict[tuple[str, str], Client] = {}
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def get_client(self, org: str, client_id: str) -> Client | None:
        self.reads += 1
        found = self.clients.get((org, client_id))
        if self.gate is not None:
            await self.gate.wait()
        return found


def _cache(directory: Directory, ttl_s: float = 60.0) -> ClientCache:
    stand_in: Any = directory  # the directory's one read the cache uses
    return ClientCache(stand_in, ttl_s)


async def test_a_record_is_read_once_until_its_org_changes() -> None:
    directory = Directory()
    directory.clients["o", "c"] = Client(id="c", name="C", assigned_users=["ana"])
    cache = _cache(directory)
    for _ in range(3):
        assert (await cache.get("o", "c")).assigned_users == ["ana"]  # type: ignore[union-attr]
    assert directory.reads == 1
    directory.clients["o", "c"] = Client(id="c", name="C", assigned_users=[])
    cache.invalidate("other-org")
    assert (await cache.get("o", "c")).assigned_users == ["ana"]  # type: ignore[union-attr]
    cache.invalidate("o")
    assert (await cache.get("o", "c")).assigned_users == []  # type: ignore[union-attr]
    assert directory.reads == 2


async def test_unknown_clients_are_not_kept_and_a_zero_bound_reads_every_time() -> None:
    directory = Directory()
    cache = _cache(directory)
    assert await cache.get("o", "ghost") is None
    assert await cache.get("o", "ghost") is None
    assert directory.reads == 2
    directory.clients["o", "c"] = Client(id="c", name="C")
    uncached = _cache(directory, ttl_s=0)
    await uncached.get("o", "c")
    await uncached.get("o", "c")
    assert directory.reads == 4


async def test_a_read_that_began_before_a_change_is_not_kept() -> None:
    """Read, change and announcement interleave: what the read returned may predate the
    change, so it is used once and not cached."""
    directory = Directory()
    directory.clients["o", "c"] = Client(id="c", name="C", assigned_users=["ana"])
    cache = _cache(directory)
    directory.gate = asyncio.Event()
    reading = asyncio.create_task(cache.get("o", "c"))
    await asyncio.sleep(0)
    directory.clients["o", "c"] = Client(id="c", name="C", assigned_users=[])
    cache.invalidate("o")
    directory.gate.set()
    assert (await reading).assigned_users == ["ana"]  # type: ignore[union-attr]
    directory.gate = None
    assert (await cache.get("o", "c")).assigned_users == []  # type: ignore[union-attr]
