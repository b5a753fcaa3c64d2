"""Telemetry on real processes: one trace per turn across the five services, exported over
OTLP/HTTP to a local receiver; GenAI spans for model calls; Prometheus metrics moved by a
turn; JSON logs with trace ids; and no personal data in any log file or exported span after
chat, ingest and tool calls that carry e-mail addresses, phone numbers, card numbers and
message bodies."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from switchboard_cli.stack import SERVICES, Stack, start_stack
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.otlp_receiver import OtlpReceiver, Span
from tests.integration.conftest import FAST_RECOVERY, frames_until_terminal, send_message, ws_url
from tests.integration.test_actions import START, api, call, setup_client
from tests.people import add_people

pytestmark = pytest.mark.integration

EMAIL = "jane.doe+vip@example.org"
PHONE = "+1 415 555 0134"
CARD = "4111 1111 1111 1111"
BODY = "the falcon lands at dawn on pier nine"
"""A message body: must never appear whole in a log line or a span."""
PERSONAL = (EMAIL, PHONE, CARD, BODY)


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_anthropic: FakeAnthropic,
          otlp: OtlpReceiver) -> Iterator[Stack]:
    running = start_stack(
        tmp_path_factory.mktemp("telemetry"), well_known_ports=False,
        env={**FAST_RECOVERY, "ANTHROPIC_API_KEY": "sk-test-not-a-real-key",
             "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
             "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    try:
        running.wait_ready(timeout_s=90)
        yield running
    finally:
        running.stop()


def answer_calls(trace: list[Span]) -> list[Span]:
    """The GenAI spans of the model calls that answered the turn."""
    return [s for s in trace if s.attributes.get("gen_ai.operation.name") == "chat"
            and s.attributes.get("switchboard.purpose") == "answer"]


async def spans_of_turn(otlp: OtlpReceiver, turn_id: str, services: set[str],
                        model_calls: int = 0, timeout: float = 20.0) -> list[Span]:
    """Every exported span of the trace whose gateway `turn` span is `turn_id`, once spans
    from all of `services`, `model_calls` answering model calls and the parent of every span
    have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        spans = otlp.snapshot()
        roots = [s for s in spans if s.name == "turn"
                 and s.attributes.get("switchboard.turn_id") == turn_id]
        if roots:
            trace = [s for s in spans if s.trace_id == roots[0].trace_id]
            ids = {s.span_id for s in trace}
            # A consumer's span is exported when its handler returns, after the spans of what
            # the handler published: wait for the parents too.
            whole = all(s.parent_id in ids for s in trace if s is not roots[0])
            # Each process exports on its own schedule: the first model call's span and the
            # action's can both be in while the second model call's is still batched.
            arrived = (services <= {s.service for s in trace}
                       and len(answer_calls(trace)) >= model_calls)
            if (arrived and whole) or time.monotonic() > deadline:
                return trace
        elif time.monotonic() > deadline:
            return []
        await asyncio.sleep(0.2)


async def test_one_trace_per_turn_spans_all_five_services(
        stack: Stack, otlp: OtlpReceiver, fake_anthropic: FakeAnthropic) -> None:
    org = f"tr{uuid.uuid4().hex[:8]}"
    await add_people(stack.store_url, org)
    await setup_client(stack, org, "sarah", "automate")
    script = fake_anthropic.script(f"trace-{org}", [
        [{"text": "Booking it."}, call("calendar_create", title="Board prep", start=START)],
        [{"text": " Booked."}]])
    async with websockets.connect(ws_url(stack, org=org)) as ws:
        await send_message(ws, f"{script} book board prep", client="sarah")
        first = await frames_until_terminal(ws, timeout=40)
        await send_message(ws, "and thank you", client="sarah")
        second = await frames_until_terminal(ws, timeout=40)
    assert first[-1]["type"] == "turn_completed" and second[-1]["type"] == "turn_completed"

    trace = await spans_of_turn(otlp, first[0]["turn_id"], set(SERVICES), model_calls=2)
    assert {s.service for s in trace} == set(SERVICES), sorted({s.service for s in trace})
    by_id = {s.span_id: s for s in trace}
    roots = [s for s in trace if s.parent_id not in by_id]
    assert [r.name for r in roots] == ["turn"], [(r.service, r.name) for r in roots]

    model_calls = answer_calls(trace)
    assert len(model_calls) == 2  # the tool-use loop: before and after the calendar entry
    for span in model_calls:
        assert span.service == "llm_stream" and span.attributes["gen_ai.provider.name"]
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
        assert span.attributes["gen_ai.usage.output_tokens"] > 0
        assert span.attributes["gen_ai.response.model"]
        assert 0 < span.attributes["gen_ai.response.time_to_first_chunk"] < 10

    # The next turn on the same socket is a trace of its own.
    other = await spans_of_turn(otlp, second[0]["turn_id"], {"gateway", "llm_stream"})
    assert other and other[0].trace_id != trace[0].trace_id

    async with httpx.AsyncClient(timeout=5) as http:
        llm = (await http.get(stack.probe_urls["llm_stream"] + "/metrics")).text
        gateway = (await http.get(stack.probe_urls["gateway"] + "/metrics")).text
    assert 'switchboard_model_tokens_total{direction="output",model=' in llm
    assert f'org="{org}"' in llm
    assert "switchboard_time_to_first_token_seconds_count" in llm
    assert 'switchboard_turn_duration_seconds_count{outcome="completed"}' in gateway


async def test_personal_data_stays_out_of_logs_and_spans(
        stack: Stack, otlp: OtlpReceiver, fake_anthropic: FakeAnthropic) -> None:
    org = f"pd{uuid.uuid4().hex[:8]}"
    await add_people(stack.store_url, org)
    await setup_client(stack, org, "mia", "suggest")
    text = f"Mail {EMAIL} (phone {PHONE}, card {CARD}) that {BODY}"
    async with api(stack, org) as http:
        r = await http.post("/clients/mia/events", json={"events": [{
            "event_id": "mail-1", "source": "email", "title": f"From {EMAIL}",
            "text": f"{BODY}. Call me on {PHONE}, card {CARD}."}]})
        assert r.status_code == 202, r.text
    script = fake_anthropic.script(f"pd-{org}", [[
        {"text": f"Sending to {EMAIL}."},
        call("email_send", to=[EMAIL], subject=f"Re: {PHONE}", body=f"{BODY} {CARD}")]])
    async with websockets.connect(ws_url(stack, org=org)) as ws:
        await send_message(ws, f"{script} {text}", client="mia")
        frames = await frames_until_terminal(ws, timeout=40)
        card = next(f for f in frames if f["type"] == "action_pending")
        await ws.send(json.dumps({"type": "action_decision", "action_id": card["action_id"],
                                  "decision": "approve"}))
        decided = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert decided["type"] == "action_decided" and decided["status"] == "executed", decided
    await spans_of_turn(otlp, frames[0]["turn_id"], set(SERVICES))
    async with httpx.AsyncClient(timeout=5) as http:
        executor = (await http.get(stack.probe_urls["action_executor"] + "/metrics")).text
    assert 'switchboard_approvals_total{outcome="approved"}' in executor

    # Every log line of every service is JSON; lines inside a turn carry its trace id.
    logs = {p.name: p.read_text(errors="replace")
            for p in Path(stack.log_dir).glob("*.log")}  # noqa: ASYNC240 - a test's files
    for service in SERVICES:
        lines = [line for line in logs[f"{service}.log"].splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]
        assert all(r["service"] == service for r in records)
    in_turns = [r for s in SERVICES for line in logs[f"{s}.log"].splitlines() if line.strip()
                and "trace_id" in (r := json.loads(line))]
    assert in_turns, logs["action_executor.log"][-3000:]
    assert "\x1b[" not in "".join(logs.values())  # no ANSI colour codes

    spans = otlp.snapshot()
    assert spans
    for needle in PERSONAL:
        for name, content in logs.items():
            assert needle not in content, (needle, name)
        for span in spans:
            assert needle.encode() not in span.raw, (needle, span.service, span.name)
