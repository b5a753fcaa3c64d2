"""The bus wiring against a real server: several servers in NATS_URL, what a reconnect
declares again, publishing while a stream is missing."""

import asyncio
import contextlib

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType
from nats.js.errors import NoStreamResponseError, NotFoundError

from switchboard_cli.embedded import free_port
from switchboard_common.bus import (
    connect_with_backoff,
    make_broker,
    prepare_jetstream,
    publish_command,
)
from switchboard_common.streams import (
    HISTORY,
    TURN_EVENTS,
    TURNS,
    ConsumerSpec,
    StreamSpec,
    declare_missing,
)
from switchboard_common.turns import Usage

pytestmark = pytest.mark.connected


async def test_a_seed_list_with_a_dead_server_still_connects(nats_url: str) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    broker = make_broker(f"{dead},{nats_url}", "test")
    try:
        nc = await connect_with_backoff(broker, 10.0)
        assert nc.is_connected
        js = await prepare_jetstream(broker, replicas=1)
        info = await js.stream_info(TURNS.name)
        assert info.config.num_replicas == 1
    finally:
        await broker.stop()


async def test_after_a_reconnect_what_the_server_lost_is_declared_again(nats_url: str) -> None:
    """A restarted server has lost its memory streams (or its whole store): created again
    once the client is back; what exists is left as it is."""
    spec = ConsumerSpec(HISTORY, "test-redeclare", "turns.completed.redeclare", ack_wait_s=7)
    broker = make_broker(nats_url, "test")
    nc = await connect_with_backoff(broker, 10.0)
    try:
        js = await prepare_jetstream(broker, (spec,), (HISTORY, TURN_EVENTS))
        await js.delete_stream(TURN_EVENTS.name)
        await js.delete_consumer(HISTORY.name, spec.name)
        await nc._reconnected_cb()  # what nats-py runs once it is connected again
        async with asyncio.timeout(10):
            while True:
                try:
                    await js.stream_info(TURN_EVENTS.name)
                    info = await js.consumer_info(HISTORY.name, spec.name)
                    break
                except NotFoundError:
                    await asyncio.sleep(0.05)
        assert info.config.ack_wait == 7
        await js.delete_consumer(HISTORY.name, spec.name)
    finally:
        await broker.stop()


async def test_declaring_what_is_missing_changes_nothing_that_exists(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        spec = ConsumerSpec(HISTORY, "test-missing", "turns.completed.missing", ack_wait_s=7)
        await declare_missing(js, (HISTORY,), (spec,))
        await js.delete_consumer(HISTORY.name, spec.name)
        await js.add_consumer(HISTORY.name, ConsumerConfig(  # a newer replica's settings
            durable_name=spec.name, ack_wait=11, filter_subject=spec.filter_subject,
            ack_policy=AckPolicy.EXPLICIT))
        assert await declare_missing(js, (HISTORY,), (spec,)) == 0
        assert (await js.consumer_info(HISTORY.name, spec.name)).config.ack_wait == 11
        await js.delete_consumer(HISTORY.name, spec.name)
    finally:
        await nc.close()


async def test_a_result_is_published_again_until_its_stream_is_back(nats_url: str) -> None:
    broker = make_broker(nats_url, "test")
    nc = await connect_with_backoff(broker, 10.0)
    spec = StreamSpec("TEST_LATE", ("late.>",), RetentionPolicy.LIMITS, StorageType.MEMORY,
                      60.0, duplicate_window_s=10.0)
    js = nc.jetstream()
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(spec.name)
    try:
        with pytest.raises(NoStreamResponseError):  # by default a missing stream fails at once
            await publish_command(broker, Usage(), "late.x", msg_id="m0", stream=spec.name)

        async def declare_later() -> None:
            await asyncio.sleep(0.5)
            await js.add_stream(spec.config())

        later = asyncio.create_task(declare_later())
        ack = await publish_command(broker, Usage(), "late.x", msg_id="m1", stream=spec.name,
                                    retry_s=5.0)
        await later
        assert ack.stream == spec.name and not ack.duplicate
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(spec.name)
        await broker.stop()
