"""A three-server NATS cluster on loopback, as the Kubernetes StatefulSet runs it: the services'
seed list connects, streams made R1 by an earlier deploy move to R3 when `replicas` says so, and
a turn command survives the loss of the server the client was connected to."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js.errors import ServiceUnavailableError

from switchboard_cli.embedded import free_port, nats_server_binary
from switchboard_common.bus import connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.streams import ALL_STREAMS, TURNS

pytestmark = pytest.mark.connected


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    ports = [(free_port(), free_port()) for _ in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{route}" for _, route in ports)
    servers = []
    for i, (client, route) in enumerate(ports):
        proc = subprocess.Popen(
            [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(client), "-n", f"n{i}",
             "-js", "-sd", str(tmp_path / f"n{i}"), "--cluster_name", "sb",
             "--cluster", f"nats://127.0.0.1:{route}", "--routes", routes],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        servers.append((f"nats://127.0.0.1:{client}", proc))
    yield servers
    for _, proc in servers:
        proc.terminate()
    for _, proc in servers:
        proc.wait(10)


async def _until_streams_exist(broker: NatsBroker, replicas: int, timeout_s: float) -> None:
    # JetStream answers "unavailable" until the three servers have elected a meta leader.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await prepare_jetstream(broker, replicas=replicas)
            return
        except (ServiceUnavailableError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_streams_are_r3_and_survive_a_lost_server(
        cluster: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    broker = make_broker(",".join(url for url, _ in cluster), "test")
    try:
        nc = await connect_with_backoff(broker, 10.0)
        await _until_streams_exist(broker, 1, 30.0)  # a deploy before NATS_STREAM_REPLICAS=3
        await prepare_jetstream(broker, replicas=3)
        js = nc.jetstream()
        for spec in ALL_STREAMS:
            assert (await js.stream_info(spec.name)).config.num_replicas == 3
        deadline = time.monotonic() + 30.0
        while True:  # the two new copies join once they have caught up
            infos = [await js.stream_info(spec.name) for spec in ALL_STREAMS]
            if all(i.cluster and len(i.cluster.replicas or []) == 2 for i in infos):
                break
            assert time.monotonic() < deadline, [i.cluster for i in infos]
            await asyncio.sleep(0.5)
        await js.publish("turns.requested.o1", b"before", stream=TURNS.name)

        [lost] = [proc for url, proc in cluster if url.endswith(f":{nc.connected_url.port}")]
        lost.kill()
        deadline = time.monotonic() + 30.0
        while True:  # the client moves to another server; the stream elects a new leader
            try:
                await js.publish("turns.requested.o1", b"after", stream=TURNS.name, timeout=2)
                break
            except (NatsError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert (await js.stream_info(TURNS.name)).state.messages == 2
    finally:
        await broker.stop()
