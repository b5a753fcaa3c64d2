"""Operations on real processes: probes and metrics on every service."""

from __future__ import annotations

import httpx
import pytest

from switchboard_cli.stack import SERVICES, Stack

pytestmark = pytest.mark.integration


async def test_every_service_serves_probes_and_metrics(stack: Stack) -> None:
    assert set(stack.probe_urls) == set(SERVICES)
    async with httpx.AsyncClient(timeout=5) as http:
        for name, url in stack.probe_urls.items():
            assert (await http.get(url + "/healthz")).status_code == 200, name
            ready = await http.get(url + "/readyz")
            assert ready.status_code == 200 and ready.json()["ready"], (name, ready.text)
            metrics = await http.get(url + "/metrics")
            assert metrics.headers["content-type"].startswith("text/plain"), name
            assert "switchboard_rate_limit_refusals_total" in metrics.text, name
