"""Real NATS and Valkey for the tests, started from the installed binaries on free ports, or
taken from NATS_URL / VALKEY_URL when set.

NATS is per test: work-queue streams allow one consumer per subject, so a test that plays
a service's part must not meet the consumers another test left behind. A fresh nats-server
starts in well under a second. With NATS_URL set, the SB_* streams on that server are deleted
before each test instead (so never point NATS_URL at a server whose data you want).
Valkey is shared by the session; tests isolate their keys with a unique org id."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import redis.asyncio as redis

from switchboard_cli.embedded import start_nats, start_valkey


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    if url := os.environ.get("NATS_URL"):
        asyncio.run(_delete_switchboard_streams(url))
        yield url
        return
    server = start_nats(tmp_path / "nats-data")
    yield server.url
    server.stop()


async def _delete_switchboard_streams(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for name in await js.streams_info():
        if name.config.name and name.config.name.startswith("SB_"):
            await js.delete_stream(name.config.name)
    await nc.close()


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


def pytest_unconfigure(config: pytest.Config) -> None:
    """llama_cpp opens two /dev/null files at import and never closes them; without this the
    interpreter reports them as unraisable ResourceWarnings after pytest's summary line."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()


# Services built in-process by tests would all bind the default probes port (8081) and collide
# with each other and with parallel runs; the stack started by integration tests sets a free
# port per service explicitly, which wins over this default.
for _service in ("CONTEXT", "LLM_STREAM", "ACTION_EXECUTOR", "MEMORY_INDEXER"):
    os.environ.setdefault(f"{_service}_HTTP_PORT", "0")
