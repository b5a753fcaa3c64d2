"""Deadlines, graceful shutdown, persistence across restarts, and the embedded local model."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from switchboard_cli.stack import SERVICES, start_stack
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.integration.conftest import FAST_RECOVERY, converse
from tests.people import add_people

pytestmark = pytest.mark.integration


async def test_hanging_provider_hits_the_turn_deadline_then_data_survives_restart(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    with FakeAnthropic() as fake:
        env = {**FAST_RECOVERY, "ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL":
               fake.base_url, "GATEWAY_TURN_DEADLINE_S": "3", "LLM_STREAM_PROVIDER_TIMEOUT_S": "60"}
        stack = start_stack(data, well_known_ports=False, env=env)
        try:
            stack.wait_ready(90)
            await add_people(stack.store_url, "acme", ("va1",))  # kept across the restart
            started = time.monotonic()
            frames = await converse(stack, "[[fake hang]] are you there?")
            assert frames[-1]["type"] == "error" and frames[-1]["code"] == "turn_timeout"
            assert 2.5 < time.monotonic() - started < 10

            client = f"c{uuid.uuid4().hex[:8]}"
            await converse(stack, "Remember: the board meets on Friday.", client=client)
        finally:
            # SIGTERM: every service drains and exits cleanly within the grace period.
            stack.stop()
        assert all(stack.procs[name].returncode == 0 for name in SERVICES), {
            n: p.returncode for n, p in stack.procs.items()}

        stack = start_stack(data, well_known_ports=False, env=env)
        try:
            stack.wait_ready(90)
            await converse(stack, "When does the board meet?", client=client)
            contents = [m["content"] if isinstance(m["content"], str)
                        else m["content"][0]["text"] for m in fake.last_request["messages"]]
            assert contents[0] == "Remember: the board meets on Friday."
        finally:
            stack.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_without_an_api_key_the_local_model_answers(tmp_path: Path) -> None:
    env = {**FAST_RECOVERY, "ANTHROPIC_API_KEY": "", "CONTEXT_MAX_TOKENS": "16",
           "GATEWAY_TURN_DEADLINE_S": "110"}
    stack = start_stack(tmp_path / "data", well_known_ports=False, env=env)
    try:
        stack.wait_ready(120)
        await add_people(stack.store_url, "acme", ("va1",))
        frames = await converse(stack, "Say hello.", timeout=120)
    finally:
        stack.stop()
    done = frames[-1]
    assert done["type"] == "turn_completed", frames[-1]
    assert "qwen2.5-coder-1.5b" in done["model"].lower() and done["provider"] == "local"
    assert sum(f["type"] == "delta" for f in frames) >= 2
    assert done["text"].strip()
