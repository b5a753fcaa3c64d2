"""Fixtures: a gateway on real NATS + Valkey and a test-driven back end (see support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import nats
import pytest

from tests.connected.gateway.support import Backend, Gateway, GatewayFactory, running_gateway


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


