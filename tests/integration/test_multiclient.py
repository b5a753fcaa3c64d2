"""One user, two clients with conflicting preferences, set through the REST API: the prompt
the model receives for each carries that client's preferences and never the other's, through
the real services over NATS (gateway -> context -> llm_stream -> the fake Anthropic server)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
import websockets

from switchboard_cli.stack import Stack
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.integration.conftest import frames_until_terminal, send_message, ws_url
from tests.people import add_people

pytestmark = pytest.mark.integration

SARAH = "Only book meetings in the morning (mornings only)"
JOHN = "Always cc the CFO on budget approvals"


def system_text(request: dict[str, Any]) -> str:
    system = request.get("system", "")
    if isinstance(system, str):
        return system
    return "\n".join(block.get("text", "") for block in system)


async def test_each_clients_prompt_has_its_own_preferences_only(
        stack: Stack, fake_anthropic: FakeAnthropic) -> None:
    org, user = f"mc{uuid.uuid4().hex[:8]}", "va1"
    await add_people(stack.store_url, org, (user,))
    async with httpx.AsyncClient(base_url=stack.gateway_url + "/v1", timeout=10,
                                 headers={"X-Org": org, "X-User": user}) as api:
        for client_id, name, pref in (("sarah", "Sarah Chen", SARAH),
                                      ("john", "John Park", JOHN)):
            created = await api.post("/clients", json={"id": client_id, "name": name})
            assert created.status_code == 201, created.text
            put = await api.put(f"/clients/{client_id}/skills",
                                json={"preferences": {"standing": pref}})
            assert put.status_code == 200, put.text

    async with websockets.connect(ws_url(stack, org=org, user=user)) as ws:
        # One socket, switching clients by naming them; back to Sarah after John.
        for client_id, own, other in (("sarah", SARAH, JOHN), ("john", JOHN, SARAH),
                                      ("sarah", SARAH, JOHN)):
            await send_message(ws, "[[fake tokens=3]] Set up a call next week please",
                               client=client_id)
            frames = await frames_until_terminal(ws)
            assert frames[-1]["type"] == "turn_completed", json.dumps(frames[-1])
            assert frames[0]["client_id"] == client_id
            system = system_text(fake_anthropic.last_request)
            assert own in system, system
            assert other not in system, system
            assert ("CFO" in system) is (client_id == "john")
