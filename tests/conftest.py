"""Real NATS and Valkey for the test session: started from the installed binaries on free
ports, or taken from NATS_URL / VALKEY_URL when set (e.g. by CI or a developer's own servers).
Tests isolate themselves with unique org ids rather than separate servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from switchboard_cli.embedded import start_nats, start_valkey


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("NATS_URL"):
        yield url
        return
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("VALKEY_URL"):
        yield url
        return
    server = start_valkey(tmp_path_factory.mktemp("valkey"), persist=False)
    yield server.url
    server.stop()


@pytest.fixture
def org() -> str:
    """A fresh org per test: subjects, keys and streams' messages never collide."""
    return f"org{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def valkey(valkey_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(valkey_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
