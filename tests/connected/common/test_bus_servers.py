"""make_broker with several servers in NATS_URL: connects through whichever one answers."""

import pytest

from switchboard_cli.embedded import free_port
from switchboard_common.bus import connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.streams import TURNS

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
