"""The offline assistant end to end, every service a real process (issue 15).

With the local model (no API key; Qwen2.5-Coder-1.5B, slow-marked): an action request becomes a
tool call that follows the client's autonomy policy, and "tomorrow at 9" lands on the right
date in Radicale for a client in another time zone.

With the fake Anthropic server (fast): a slow answer that keeps streaming outlives every quiet
timeout and completes; an answer that stops mid-way fails with `stream_idle_timeout`, and the
user's message of that failed turn is kept in the conversation; llm_stream stopped (SIGSTOP)
for longer than both quiet bounds finishes its answer once it runs again."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import websockets

from switchboard_action_executor.adapters.caldav import CalDav
from switchboard_cli.stack import Stack, start_stack
from tests.fakes.fake_anthropic import FakeAnthropic, answer_pieces
from tests.integration.conftest import (
    FAST_RECOVERY,
    frames_until_terminal,
    send_message,
    text_of,
    ws_url,
)
from tests.people import add_people

pytestmark = pytest.mark.integration

ZONE = "Asia/Tokyo"


def api(stack: Stack, org: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.gateway_url + "/v1", timeout=60,
                             headers={"X-Org": org, "X-User": "va1"})


async def converse(stack: Stack, text: str, *, client: str, org: str, timeout: float
                   ) -> list[dict[str, Any]]:
    async with websockets.connect(ws_url(stack, org=org)) as ws:
        await send_message(ws, text, client=client)
        return await frames_until_terminal(ws, timeout=timeout)


async def client_with(stack: Stack, org: str, client: str, skills: dict[str, Any]) -> None:
    async with api(stack, org) as http:
        assert (await http.post("/clients", json={"id": client, "name": "Kenji Sato"})
                ).status_code == 201
        put = await http.put(f"/clients/{client}/skills", json=skills)
        assert put.status_code == 200, put.text


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Generous model bounds: ~10 s per tool call on an idle 2-core machine, but a busy one
    # (other test processes) can make it minutes.
    env = {**FAST_RECOVERY, "ANTHROPIC_API_KEY": "", "CONTEXT_MAX_TOKENS": "48",
           "GATEWAY_TURN_DEADLINE_S": "580", "GATEWAY_TURN_IDLE_TIMEOUT_S": "560",
           "LLM_STREAM_FIRST_TOKEN_TIMEOUT_S": "540", "LLM_STREAM_ACK_WAIT_S": "15"}
    stack = start_stack(tmp_path_factory.mktemp("offline"), well_known_ports=False, env=env)
    try:
        stack.wait_ready(180)
        yield stack
    finally:
        stack.stop()


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_local_model_books_tomorrow_at_9_in_the_clients_zone(local_stack: Stack) -> None:
    org = f"of{uuid.uuid4().hex[:8]}"
    await add_people(local_stack.store_url, org, ("va1",))
    # automate with thresholds at 0: whatever confidence the model states, the policy executes.
    await client_with(local_stack, org, "kenji", {
        "timezone": ZONE, "enabled_tools": ["calendar_create", "calendar_list", "task_add"],
        "autonomy": {"mode": "automate",
                     "default": {"auto_execute": 0.0, "require_approval": 0.0}}})
    tomorrow = (datetime.now(UTC).astimezone(ZoneInfo(ZONE)) + timedelta(days=1)).date()
    frames = await converse(local_stack, "Schedule a call with John tomorrow at 9",
                            client="kenji", timeout=590, org=org)
    done = frames[-1]
    assert done["type"] == "turn_completed", done
    assert "qwen2.5-coder-1.5b" in done["model"].lower()
    ran = [f for f in frames if f["type"] == "action_result"]
    assert [(f["tool"], f["status"]) for f in ran] == [("calendar_create", "executed")], frames
    assert ran[0]["arguments"]["start"].startswith(f"{tomorrow.isoformat()}T09:00:00+09:00")
    assert [(a["tool"], a["outcome"]) for a in done["actions"]] == [("calendar_create", "ran")]
    assert done["meta"]["timezone"] == ZONE

    cal = CalDav(local_stack.env["ACTION_EXECUTOR_CALDAV_URL"], "switchboard")
    try:
        events = await cal.list(org, "kenji", datetime.now(UTC) - timedelta(days=1),
                                datetime.now(UTC) + timedelta(days=3))
    finally:
        await cal.close()
    assert len(events) == 1
    start = datetime.fromisoformat(events[0]["start"]).astimezone(ZoneInfo(ZONE))
    assert (start.date(), start.hour, start.minute) == (tomorrow, 9, 0)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_local_model_proposal_in_suggest_mode_is_an_approval_card(
        local_stack: Stack) -> None:
    org = f"of{uuid.uuid4().hex[:8]}"
    await add_people(local_stack.store_url, org, ("va1",))
    await client_with(local_stack, org, "kenji", {
        "timezone": ZONE, "enabled_tools": ["calendar_create", "task_add", "email_draft"],
        "autonomy": {"mode": "suggest",
                     "default": {"auto_execute": 0.9, "require_approval": 0.0}}})
    frames = await converse(local_stack, "Add a task to renew my passport by Friday",
                            client="kenji", timeout=590, org=org)
    cards = [f for f in frames if f["type"] == "action_pending"]
    assert [c["tool"] for c in cards] == ["task_add"], frames
    assert "passport" in cards[0]["arguments"]["title"].lower()
    assert [(a["tool"], a["outcome"]) for a in frames[-1]["actions"]] == [
        ("task_add", "proposed")]


@pytest.fixture(scope="module")
def fake_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, FakeAnthropic]]:
    with FakeAnthropic() as fake:
        # Quiet timeouts of a few seconds, so "slow but streaming" is far longer than them.
        env = {**FAST_RECOVERY, "ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL":
               fake.base_url, "GATEWAY_TURN_DEADLINE_S": "60", "GATEWAY_TURN_IDLE_TIMEOUT_S": "8",
               "LLM_STREAM_FIRST_TOKEN_TIMEOUT_S": "3", "LLM_STREAM_IDLE_TIMEOUT_S": "2",
               "LLM_STREAM_PROVIDER_TIMEOUT_S": "60"}
        stack = start_stack(tmp_path_factory.mktemp("deadlines"), well_known_ports=False,
                            env=env)
        try:
            stack.wait_ready(90)
            yield stack, fake
        finally:
            stack.stop()


async def test_a_slow_streaming_answer_completes_and_a_stalled_one_keeps_the_message(
        fake_stack: tuple[Stack, FakeAnthropic], tmp_path: Path) -> None:
    stack, _ = fake_stack
    org = f"dl{uuid.uuid4().hex[:8]}"
    await add_people(stack.store_url, org, ("va1",))
    await client_with(stack, org, "kenji", {"enabled_tools": []})

    # 14 pieces 0.7 s apart: ~10 s in all, far beyond the 2 s idle and 3 s first-token bounds.
    frames = await converse(stack, "[[fake tokens=14 delay_ms=700]] tell me slowly",
                            client="kenji", timeout=60, org=org)
    assert frames[-1]["type"] == "turn_completed", frames[-1]
    assert sum(f["type"] == "delta" for f in frames) == 14

    stalled = "[[fake hang_after=3]] this answer stops half-way"
    frames = await converse(stack, stalled, client="kenji", timeout=60, org=org)
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "stream_idle_timeout"

    async with api(stack, org) as http:
        page = (await http.get("/clients/kenji/conversations/main/turns")).json()
    turns = page["items"]
    assert [t["user_text"] for t in turns][-1] == stalled
    assert turns[-1]["error"] == "stream_idle_timeout"


async def test_llm_stream_stopped_longer_than_its_quiet_bounds_still_finishes_the_answer(
        fake_stack: tuple[Stack, FakeAnthropic]) -> None:
    stack, _ = fake_stack
    org = f"st{uuid.uuid4().hex[:8]}"
    await add_people(stack.store_url, org, ("va1",))
    await client_with(stack, org, "kenji", {"enabled_tools": []})
    llm_stream = stack.procs["llm_stream"]

    async def stop_after_first_delta(frame: dict[str, Any], frames: list[Any]) -> None:
        if frame["type"] == "delta" and sum(f["type"] == "delta" for f in frames) == 1:
            # 5 s: past the 2 s idle and 3 s first-token bounds, inside the gateway's 8 s.
            llm_stream.send_signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(5)
            finally:
                llm_stream.send_signal(signal.SIGCONT)

    async with websockets.connect(ws_url(stack, org=org)) as ws:
        await send_message(ws, "[[fake tokens=12 delay_ms=200]] tell me", client="kenji")
        frames = await frames_until_terminal(ws, timeout=60, on_frame=stop_after_first_delta)
    assert frames[-1]["type"] == "turn_completed", frames[-1]
    # The same call went on (no turn_retry); what waited in the socket came out at once.
    assert not [f for f in frames if f["type"] == "turn_retry"]
    assert text_of(frames) == frames[-1]["text"] == "".join(answer_pieces("tell me", 12)), frames
