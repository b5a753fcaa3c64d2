"""A three-server NATS cluster on loopback, as the Kubernetes StatefulSet runs it: the services'
seed list connects, streams made R1 by an earlier deploy move to R3 when `replicas` says so, and
a turn command survives the loss of the server the client was connected to."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from nats.errors import Error as NatsError

from switchboard_cli.embedded import free_port, nats_server_binary
from switchboard_common.bus import MSG_ID, connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.streams import ALL_STREAMS, TURNS

pytestmark = pytest.mark.connected

T = TypeVar("T")


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


async def _retried(action: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """Cluster calls fail while a leader is being elected (the meta group at start-up, a
    stream's group after a server is lost): retry them until the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await action()
        except (NatsError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.mark.timeout(240)
async def test_streams_are_r3_and_survive_a_lost_server(
        cluster: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    broker = make_broker(",".join(url for url, _ in cluster), "test")
    try:
        nc = await connect_with_backoff(broker, 10.0)
        await _retried(lambda: prepare_jetstream(broker, replicas=1), 60.0)  # an earlier deploy
        js = await _retried(lambda: prepare_jetstream(broker, replicas=3), 60.0)
        for spec in ALL_STREAMS:
            assert (await js.stream_info(spec.name)).config.num_replicas == 3
        deadline = time.monotonic() + 60.0
        while True:  # the two new copies count once they have caught up (before that, losing
            # the leader leaves no electable copy: the stream would be unavailable)
            infos = [await js.stream_info(spec.name) for spec in ALL_STREAMS]
            if all(i.cluster and len(i.cluster.replicas or []) == 2
                   and all(p.current for p in i.cluster.replicas or []) for i in infos):
                break
            assert time.monotonic() < deadline, [i.cluster for i in infos]
            await asyncio.sleep(0.5)
        # Nats-Msg-Id: a retried publish whose ack was lost is stored once.
        await _retried(lambda: js.publish("turns.requested.o1", b"before", stream=TURNS.name,
                                          timeout=2, headers={MSG_ID: "before"}), 30.0)

        [lost] = [proc for url, proc in cluster if url.endswith(f":{nc.connected_url.port}")]
        lost.kill()
        # The client moves to another server and the stream elects a new leader (slow on a
        # loaded machine: raft timeouts stretch with the scheduler's).
        await _retried(lambda: js.publish("turns.requested.o1", b"after", stream=TURNS.name,
                                          timeout=2, headers={MSG_ID: "after"}), 45.0)
        assert (await _retried(lambda: js.stream_info(TURNS.name), 30.0)).state.messages == 2
    finally:
        await broker.stop()
