"""The browser tests reuse the connected gateway fixtures."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from tests.connected.gateway.support import Gateway, GatewayFactory, running_gateway
from tests.people import add_people


@pytest.fixture(autouse=True)
async def people(valkey_url: str, org: str) -> None:
    await add_people(valkey_url, org, ("va1",))


@pytest.fixture
def gateway_factory(nats_url: str, valkey_url: str) -> GatewayFactory:
    def make(**overrides: Any) -> AbstractAsyncContextManager[Gateway]:
        return running_gateway(**{"nats_url": nats_url, "valkey_url": valkey_url, **overrides})
    return make
