"""The context service's tool-use loop in-process against real NATS and Valkey, the test
playing llm_stream (model requests and results) and the action_executor (action results):
proposals per call, the next model call once every result is in (and only once), and the
per-turn token budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from nats.js.client import JetStreamContext

from switchboard_common.actions import ActionProposed, ActionResult
from switchboard_common.envelope import utcnow
from switchboard_common.model import ModelRequest, ModelResult, ToolCall
from switchboard_common.turns import TurnRequest, Usage
from switchboard_common.valkey import connect_valkey
from switchboard_context.main import build_app
from switchboard_context.settings import Settings
from tests.connected.helpers import Collector, fetch_one, nats_client

pytestmark = pytest.mark.connected


@pytest.fixture
async def context_app(nats_url: str, valkey_url: str) -> AsyncIterator[None]:
    app = build_app(Settings(nats_url=nats_url, valkey_url=valkey_url, ack_wait_s=2,
                             max_deliver=2, tool_token_budget=1000, tool_max_iterations=4,
                             memory_search=False))
    await app.start()
    yield
    await app.stop()


def tool_use(req: ModelRequest, calls: list[ToolCall], *, tokens: int, text: str = ""
             ) -> ModelResult:
    return ModelResult(org_id=req.org_id, turn_id=req.turn_id, user_id=req.user_id,
                       client_id=req.client_id, conversation_id=req.conversation_id,
                       iteration=req.iteration, provider="test", model="m", text=text,
                       stop_reason="tool_use", tool_calls=calls, last_seq=3,
                       usage=Usage(input_tokens=tokens, output_tokens=10), meta=req.meta,
                       request=req)  # as llm_stream answers a call that uses tools


async def start_turn(nc, org: str, turn_id: str) -> ModelRequest:  # type: ignore[no-untyped-def]
    t = TurnRequest(org_id=org, turn_id=turn_id, user_id="va1", client_id="sarah",
                    text="Book lunch with Dana and add a task", idempotency_key=turn_id,
                    deadline_at=utcnow() + timedelta(seconds=60))
    await nc.jetstream().publish(f"turns.requested.{org}", t.model_dump_json().encode())
    msg = await fetch_one(nc, "SB_MODEL", f"model.requested.{org}", "test-llm")
    return ModelRequest.model_validate_json(msg.data)


CALLS = [ToolCall(id="toolu_a", name="calendar_create",
                  input={"title": "Lunch", "start": "2031-01-01T12:00:00Z", "confidence": 0.9,
                         "rationale": "asked"}),
         ToolCall(id="toolu_b", name="task_add", input={"title": "Send menu"})]


async def test_calls_are_proposed_and_results_continue_the_loop(
        context_app: None, nats_url: str, org: str) -> None:
    async with nats_client(nats_url) as nc:
        req = await start_turn(nc, org, "t1")
        assert {t.name for t in req.tools} >= {"calendar_create", "task_add"}
        js = nc.jetstream()
        await js.publish(f"model.completed.{org}",
                         tool_use(req, CALLS, tokens=100, text="On it.").model_dump_json()
                         .encode())
        proposals = []
        sub = await js.pull_subscribe(f"actions.proposed.{org}", durable="test-exec",
                                      stream="SB_ACTIONS")
        while len(proposals) < 2:
            for m in await sub.fetch(2, timeout=10):
                proposals.append(ActionProposed.model_validate_json(m.data))
                await m.ack()
        by_call = {p.tool_use_id: p for p in proposals}
        assert by_call["toolu_a"].confidence == 0.9 and by_call["toolu_a"].rationale == "asked"
        assert "confidence" not in by_call["toolu_a"].arguments
        assert by_call["toolu_b"].confidence is None  # missing: the executor will "ask"
        assert by_call["toolu_a"].autonomy.mode == "suggest"  # the system default

        def result(p: ActionProposed, status: str) -> bytes:
            return ActionResult(org_id=org, action_id=p.action_id, turn_id="t1",
                                client_id="sarah", tool_use_id=p.tool_use_id, tool=p.tool,
                                status=status, message=status).model_dump_json().encode()

        await js.publish(f"actions.results.{org}", result(by_call["toolu_a"], "pending"))
        await js.publish(f"actions.results.{org}", result(by_call["toolu_b"], "needs_input"))
        msg = await fetch_one(nc, "SB_MODEL", f"model.requested.{org}", "test-llm")
        # A later result (the pending action approved after all) does not call the model again.
        await js.publish(f"actions.results.{org}", result(by_call["toolu_a"], "executed"))
        nxt = ModelRequest.model_validate_json(msg.data)
        assert nxt.iteration == 1 and nxt.seq_base == 3
        assistant, results = nxt.messages[-2], nxt.messages[-1]
        assert assistant.role == "assistant" and isinstance(assistant.content, list)
        assert [b.type for b in assistant.content] == ["text", "tool_use", "tool_use"]
        assert isinstance(results.content, list)
        assert [(b.tool_use_id, '"needs_input"' in b.content) for b in results.content  # type: ignore[union-attr]
                ] == [("toolu_a", False), ("toolu_b", True)]

        events = Collector()
        await nc.subscribe(f"turns.events.{org}.t1", cb=events.handle)
        final = ModelResult(org_id=org, turn_id="t1", user_id="va1", client_id="sarah",
                            conversation_id="main", iteration=1, provider="test", model="m",
                            text=" Lunch awaits your approval.", stop_reason="end_turn",
                            last_seq=6, usage=Usage(input_tokens=200, output_tokens=5))
        await js.publish(f"model.completed.{org}", final.model_dump_json().encode())
        done = (await events.wait_for(lambda i: i))[0]
        assert (await js.stream_info("SB_MODEL")).state.messages == 0  # no third request
        assert done["type"] == "turn_completed" and done["seq"] == 7
        assert done["text"] == "On it.\n\n Lunch awaits your approval."  # one paragraph per call
        assert done["usage"]["input_tokens"] == 300 and done["usage"]["output_tokens"] == 15


async def test_the_token_budget_stops_the_loop(context_app: None, nats_url: str,
                                               org: str) -> None:
    async with nats_client(nats_url) as nc:
        req = await start_turn(nc, org, "t2")
        events = Collector()
        await nc.subscribe(f"turns.events.{org}.t2", cb=events.handle)
        await nc.jetstream().publish(
            f"model.completed.{org}", tool_use(req, CALLS, tokens=995).model_dump_json().encode())
        items = await events.wait_for(lambda i: any(e["type"] == "turn_completed" for e in i))
        assert [e["type"] for e in items] == ["delta", "turn_completed"]
        assert items[0]["seq"] == 4 and items[1]["seq"] == 5
        assert items[1]["stop_reason"] == "token_budget" and "budget" in items[1]["text"]
        info = await nc.jetstream().stream_info("SB_ACTIONS")
        assert info.state.messages == 0  # nothing was proposed


async def proposed_actions(js: JetStreamContext, org: str, durable: str, n: int
                    ) -> list[ActionProposed]:
    """The first `n` actions proposed in the org (left unacked: the stream keeps them)."""
    sub = await js.pull_subscribe(f"actions.proposed.{org}", durable=durable,
                                  stream="SB_ACTIONS")
    proposed: list[ActionProposed] = []
    while len(proposed) < n:
        proposed += [ActionProposed.model_validate_json(m.data)
                     for m in await sub.fetch(n - len(proposed), timeout=10)]
    return proposed


async def loop_keys(valkey_url: str, org: str, turn: str) -> list[bytes]:
    valkey = await connect_valkey(valkey_url, 5.0)
    try:
        return sorted(await valkey.keys(f"ctx:loop:{org}:{turn}:*"))
    finally:
        await valkey.aclose()


async def test_the_loop_keeps_state_only_once_the_model_calls_a_tool(
        context_app: None, nats_url: str, valkey_url: str, org: str) -> None:
    """A turn whose first answer calls no tool (most turns) stores nothing for the loop; the
    first tool call starts the loop's state from the request its result carries back, and a
    redelivered result starts it the same way and proposes nothing new."""
    async with nats_client(nats_url) as nc:
        js = nc.jetstream()
        plain = await start_turn(nc, org, "t3")
        events = Collector()
        await nc.subscribe(f"turns.events.{org}.t3", cb=events.handle)
        answer = tool_use(plain, [], tokens=100, text="Done.").model_copy(
            update={"stop_reason": "end_turn", "request": None})
        await js.publish(f"model.completed.{org}", answer.model_dump_json().encode())
        await events.wait_for(lambda i: any(e["type"] == "turn_completed" for e in i))
        assert await loop_keys(valkey_url, org, "t3") == []

        req = await start_turn(nc, org, "t4")
        assert await loop_keys(valkey_url, org, "t4") == []  # nothing stored before the answer
        calls = tool_use(req, CALLS, tokens=100).model_dump_json().encode()
        await js.publish(f"model.completed.{org}", calls)
        proposed = await proposed_actions(js, org, "test-exec3", 2)
        assert sorted(p.tool_use_id for p in proposed) == ["toolu_a", "toolu_b"]
        assert all(p.autonomy.mode == "suggest" and "calendar_create" in p.enabled_tools
                   for p in proposed)  # the policy and tools the turn started with
        keys = await loop_keys(valkey_url, org, "t4")
        prefix = f"ctx:loop:{org}:t4:"
        assert {k.decode().removeprefix(prefix) for k in keys} >= {"meta", "req:0", "calls:0"}
        await js.publish(f"model.completed.{org}", calls, headers={"Nats-Msg-Id": "again"})
        async with asyncio.timeout(10):  # the redelivered result is handled and acked
            while (info := await js.consumer_info("SB_RESULTS", "context-results")
                   ).num_pending or info.num_ack_pending:
                await asyncio.sleep(0.02)
        assert (await js.stream_info("SB_ACTIONS")).state.messages == 2  # proposed once


async def test_tool_calls_without_their_request_end_the_turn_without_them(
        context_app: None, nats_url: str, valkey_url: str, org: str) -> None:
    """A result from an llm_stream that does not carry the request back (an older version
    during a rolling upgrade) cannot continue the loop: the turn ends with its text, and no
    action is proposed."""
    async with nats_client(nats_url) as nc:
        req = await start_turn(nc, org, "t5")
        events = Collector()
        await nc.subscribe(f"turns.events.{org}.t5", cb=events.handle)
        old = tool_use(req, CALLS, tokens=100, text="On it.").model_copy(
            update={"request": None})
        await nc.jetstream().publish(f"model.completed.{org}", old.model_dump_json().encode())
        done = (await events.wait_for(
            lambda i: any(e["type"] == "turn_completed" for e in i)))[-1]
        assert done["text"] == "On it." and done["actions"] == []
        assert (await nc.jetstream().stream_info("SB_ACTIONS")).state.messages == 0
        assert await loop_keys(valkey_url, org, "t5") == []


async def test_a_later_iterations_tool_calls_without_their_request_end_the_turn(
        context_app: None, nats_url: str, org: str) -> None:
    """Every iteration's request is kept from the result that answers it: one that calls
    tools without it (an older llm_stream mid-loop) ends the turn with the text of all its
    model calls and the actions already taken, and proposes nothing more."""
    async with nats_client(nats_url) as nc:
        js = nc.jetstream()
        req = await start_turn(nc, org, "t6")
        await js.publish(f"model.completed.{org}", tool_use(
            req, CALLS, tokens=100, text="On it.").model_dump_json().encode())
        proposed = await proposed_actions(js, org, "test-exec6", 2)
        for p in proposed:
            await js.publish(f"actions.results.{org}", ActionResult(
                org_id=org, action_id=p.action_id, turn_id="t6", client_id="sarah",
                tool_use_id=p.tool_use_id, tool=p.tool, status="executed",
                message="done").model_dump_json().encode())
        nxt = ModelRequest.model_validate_json(
            (await fetch_one(nc, "SB_MODEL", f"model.requested.{org}", "test-llm")).data)
        assert nxt.iteration == 1
        events = Collector()
        await nc.subscribe(f"turns.events.{org}.t6", cb=events.handle)
        more = [ToolCall(id="toolu_c", name="task_add", input={"title": "Book a table"})]
        old = tool_use(nxt, more, tokens=50, text="One more.").model_copy(
            update={"request": None})
        await js.publish(f"model.completed.{org}", old.model_dump_json().encode())
        done = (await events.wait_for(
            lambda i: any(e["type"] == "turn_completed" for e in i)))[-1]
        assert done["text"] == "On it.\n\nOne more."
        assert sorted(a["tool"] for a in done["actions"]) == ["calendar_create", "task_add"]
        # The two proposals and their two results: nothing proposed since.
        assert (await js.stream_info("SB_ACTIONS")).state.messages == 4
