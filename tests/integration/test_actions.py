"""Actions end to end, every service a real process: the fake Anthropic server scripts tool
use, the action_executor decides by the client's autonomy policy and acts on a real CalDAV
server (Radicale) and a real SMTP server (aiosmtpd, mail kept in a Maildir).

Covers: a tool call executed and its result fed back to the model; parallel calls becoming
approval cards decided over the WebSocket (approve with edit, reject, twice); REST approvals
with access control and batches; pending approvals surviving restarts; the executor killed right
after the effect (one event, one mail); context killed mid-loop (one event, the turn
finished); the iteration bound."""

from __future__ import annotations

import asyncio
import json
import mailbox
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from switchboard_action_executor.adapters.caldav import CalDav
from switchboard_cli.embedded import mail_dir
from switchboard_cli.stack import Stack
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.integration.conftest import (
    frames_until_terminal,
    new_org,
    running_stack,
    send_message,
    ws_url,
)

pytestmark = pytest.mark.integration

MAX_ITERATIONS = 3
START = "2031-03-04T09:00:00+00:00"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_anthropic: FakeAnthropic
          ) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("actions"), fake_anthropic,
                       ACTION_EXECUTOR_ACK_WAIT_S="3", ACTION_EXECUTOR_RESUME_AFTER_S="3",
                       CONTEXT_TOOL_MAX_ITERATIONS=str(MAX_ITERATIONS)) as running:
        yield running


@pytest.fixture
async def org(stack: Stack) -> AsyncIterator[str]:
    yield await new_org(stack, "ac", ("va1",), ("intruder",))


def call(tool: str, confidence: float = 0.95, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "input": {**arguments, "confidence": confidence,
                                    "rationale": "the user asked for it"}}


async def setup_client(stack: Stack, org: str, client: str, mode: str,
                       user: str = "va1") -> None:
    async with api(stack, org, user) as http:
        assert (await http.post("/clients", json={"id": client, "name": client})
                ).status_code == 201
        put = await http.put(f"/clients/{client}/skills", json={
            "autonomy": {"mode": mode}, "enabled_tools": [
                "calendar_create", "calendar_list", "calendar_delete", "email_send",
                "email_draft", "task_add", "task_list", "task_complete"]})
        assert put.status_code == 200, put.text


def api(stack: Stack, org: str, user: str = "va1") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.gateway_url + "/v1", timeout=60,
                             headers={"X-Org": org, "X-User": user})


async def turn(stack: Stack, org: str, client: str, text: str, *, ws: Any = None,
               timeout: float = 40.0) -> list[dict[str, Any]]:
    if ws is None:
        async with websockets.connect(ws_url(stack, org=org)) as own:
            await send_message(own, text, client=client)
            return await frames_until_terminal(own, timeout=timeout)
    await send_message(ws, text, client=client)
    return await frames_until_terminal(ws, timeout=timeout)


async def titles(stack: Stack, org: str, client: str) -> list[str]:
    cal = CalDav(stack.env["ACTION_EXECUTOR_CALDAV_URL"], "switchboard")
    try:
        events = await cal.list(org, client, datetime(2030, 1, 1, tzinfo=UTC),
                                datetime(2033, 1, 1, tzinfo=UTC))
    finally:
        await cal.close()
    return [e["title"] for e in events]


def mail_with(stack: Stack, subject: str) -> list[Any]:
    box = mail_dir(stack.data_dir)
    return [m for m in mailbox.Maildir(box) if m["Subject"] == subject] if box.exists() else []


def restart_executor(stack: Stack, **env: str) -> None:
    proc = stack.procs["action_executor"]
    if proc.poll() is None:
        stack.kill_service("action_executor", signal.SIGKILL)
    saved = dict(stack.env)
    stack.env.update(env)
    try:
        stack.start_service("action_executor")
    finally:
        stack.env.clear()
        stack.env.update(saved)


async def test_a_tool_call_is_executed_and_fed_back(stack: Stack, org: str,
                                                    fake_anthropic: FakeAnthropic) -> None:
    await setup_client(stack, org, "sarah", "automate")
    script = fake_anthropic.script(f"book-{org}", [
        [{"text": "Booking it."}, call("calendar_create", title="Board prep", start=START)],
        [{"text": " Booked for Tuesday."}]])
    frames = await turn(stack, org, "sarah", f"{script} book board prep on Tuesday at 9")
    done = frames[-1]
    assert done["type"] == "turn_completed", json.dumps(done)
    # One paragraph per model call, never glued together.
    assert done["text"] == "Booking it.\n\n Booked for Tuesday."
    assert done["stop_reason"] == "end_turn"
    results = [f for f in frames if f["type"] == "action_result"]
    assert [(r["tool"], r["status"]) for r in results] == [("calendar_create", "executed")]
    assert await titles(stack, org, "sarah") == ["Board prep"]
    tool_result = fake_anthropic.last_request["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result" and '"executed"' in tool_result["content"]
    assert "confidence" in fake_anthropic.last_request["tools"][0]["input_schema"]["required"]


async def test_a_bad_argument_goes_back_at_once_and_nothing_personal_is_logged(
        stack: Stack, org: str, fake_anthropic: FakeAnthropic) -> None:
    """A model-proposed mail to a malformed address (with a phone number in it), in automate
    mode: refused before anything runs, as a typed error to the model (which answers in the
    same turn) and a readable result to the user; no service log holds the address."""
    address = "bad.addr+1-415-555-0188@@example..org"
    await setup_client(stack, org, "nia", "automate")
    script = fake_anthropic.script(f"bad-{org}", [
        [call("email_send", confidence=1.0, to=[address], subject="Numbers",
              body="call +1 415 555 0188")],
        [{"text": "That address looks wrong; which one should I use?"}]])
    started = asyncio.get_running_loop().time()
    frames = await turn(stack, org, "nia", f"{script} mail the numbers")
    assert asyncio.get_running_loop().time() - started < 15  # no redelivery, no timeout
    assert frames[-1]["type"] == "turn_completed", frames[-1]
    result = next(f for f in frames if f["type"] == "action_result")
    assert (result["status"], result["code"]) == ("refused", "invalid_arguments")
    assert "to.0" in result["message"] and address not in result["message"]
    fed_back = fake_anthropic.last_request["messages"][-1]["content"][0]
    assert fed_back["is_error"] and '"code": "invalid_arguments"' in fed_back["content"]
    assert not mail_with(stack, "Numbers")
    for log in Path(stack.log_dir).glob("*.log"):  # noqa: ASYNC240 - a test's files
        text = log.read_text(errors="replace")
        assert address not in text and "555-0188" not in text and "555 0188" not in text, log


async def test_parallel_calls_become_cards_decided_over_the_socket(
        stack: Stack, org: str, fake_anthropic: FakeAnthropic) -> None:
    await setup_client(stack, org, "john", "suggest")
    script = fake_anthropic.script(f"three-{org}", [[
        call("task_add", title="Prepare budget deck"),
        call("email_send", to=["cfo@example.com"], subject="Budget review",
             body="Can we meet on Tuesday?"),
        call("calendar_create", title="Budget review", start=START)]])
    async with websockets.connect(ws_url(stack, org=org)) as ws:
        frames = await turn(stack, org, "john", f"{script} set up the budget review", ws=ws)
        assert frames[-1]["type"] == "turn_completed"
        cards = {f["tool"]: f for f in frames if f["type"] == "action_pending"}
        assert set(cards) == {"task_add", "email_send", "calendar_create"}
        assert cards["email_send"]["risky"] is True and cards["task_add"]["confidence"] == 0.95
        # The model was told the three calls await approval, in one iteration.
        results = fake_anthropic.last_request["messages"][-1]["content"]
        assert len(results) == 3 and all("pending" in r["content"] for r in results)

        edited = {"to": ["cfo@example.com"], "subject": "Budget review (edited)",
                  "body": "Tuesday 9:00?"}
        await ws.send(json.dumps({"type": "action_decisions", "decisions": [
            {"type": "action_decision", "action_id": cards["email_send"]["action_id"],
             "decision": "approve", "arguments": edited},
            {"type": "action_decision", "action_id": cards["task_add"]["action_id"],
             "decision": "reject"},
            {"type": "action_decision", "action_id": cards["task_add"]["action_id"],
             "decision": "approve"}]}))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(3)]
    decided = {(r["type"], r.get("status") or r.get("code")) for r in replies}
    assert decided == {("action_decided", "executed"), ("action_decided", "rejected"),
                       ("error", "action_already_decided")}
    assert len(mail_with(stack, "Budget review (edited)")) == 1
    assert mail_with(stack, "Budget review") == []


async def test_rest_approvals_batches_and_access(stack: Stack, org: str,
                                                 fake_anthropic: FakeAnthropic) -> None:
    await setup_client(stack, org, "dana", "assist")
    script = fake_anthropic.script(f"rest-{org}", [[
        call("email_send", to=["x@example.com"], subject="Hello", body="Hi there"),
        call("task_add", 0.7, title="Call the bank")]])
    frames = await turn(stack, org, "dana", f"{script} mail x and remind me")
    assert frames[-1]["type"] == "turn_completed"
    async with api(stack, org) as http, api(stack, org, "intruder") as other:
        pending = (await http.get("/clients/dana/actions")).json()
        assert sorted(a["tool"] for a in pending) == ["email_send", "task_add"]
        assert {a["policy"]["outcome"] for a in pending} == {"propose"}
        ids = [a["action_id"] for a in pending]
        # A user of the org without access to the client learns nothing and changes nothing.
        assert (await other.get("/clients/dana/actions")).status_code == 403
        refused = await other.post(f"/actions/{ids[0]}/decision", json={"decision": "approve"})
        assert refused.status_code == 403
        batch = await http.post("/actions/decisions", json={"decisions": [
            {"action_id": i, "decision": "approve"} for i in ids]})
        assert [o["ok"] for o in batch.json()] == [True, True], batch.text
        assert (await http.get("/clients/dana/actions")).json() == []
        again = await http.post(f"/actions/{ids[0]}/decision", json={"decision": "reject"})
        assert again.status_code == 409 and "already decided" in again.json()["detail"]
        assert (await http.post("/actions/nope/decision", json={"decision": "approve"})
                ).status_code == 404
        tasks = (await http.get("/clients/dana/tasks")).json()
        assert [t["title"] for t in tasks] == ["Call the bank"]
        audit = (await http.get("/clients/dana/audit")).json()
        kinds = [e["kind"] for e in audit]
        assert kinds.count("proposed") == 2 and kinds.count("decided") == 2
        assert kinds.count("executed") == 2
        assert all(e["actor"] == "va1" for e in audit if e["kind"] == "decided")
        assert "Hi there" not in json.dumps(audit)


async def test_undo_reverts_what_ran_alone_and_autonomy_learns_it(
        stack: Stack, org: str, fake_anthropic: FakeAnthropic) -> None:
    await setup_client(stack, org, "uma", "automate")
    script = fake_anthropic.script(f"undo-{org}", [
        [call("calendar_create", title="Offsite", start=START),
         call("task_add", title="Book the venue"),
         call("calendar_list", start=START, end="2031-03-05T09:00:00+00:00")],
        [{"text": "Booked the offsite and noted the venue."}]])
    frames = await turn(stack, org, "uma", f"{script} set up the offsite")
    ran = {f["tool"]: f["action_id"] for f in frames if f["type"] == "action_result"
           and f["status"] == "executed"}
    assert sorted(ran) == ["calendar_create", "calendar_list", "task_add"], frames
    assert await titles(stack, org, "uma") == ["Offsite"]
    async with api(stack, org) as http, api(stack, org, "intruder") as other:
        learned = {t["tool"]: t for t in (await http.get(
            "/clients/uma/autonomy/learning")).json()}
        assert learned["calendar_create"]["recent"] == ["alone"]
        # Someone without access to the client cannot undo it.
        assert (await other.post(f"/actions/{ran['calendar_create']}/undo")).status_code == 403

        undone = await http.post(f"/actions/{ran['calendar_create']}/undo",
                                 json={"reason": "wrong week"})
        assert undone.status_code == 200, undone.text
        record = undone.json()
        assert record["status"] == "undone" and record["undo"]["by"] == "va1"
        assert record["undo"]["output"]["deleted"] is True
        assert await titles(stack, org, "uma") == []
        assert (await http.post(f"/actions/{ran['task_add']}/undo")).status_code == 200
        assert (await http.get("/clients/uma/tasks")).json() == []

        # Once is enough; a lookup has nothing to take back; unknown actions are 404.
        again = await http.post(f"/actions/{ran['calendar_create']}/undo")
        assert again.status_code == 409 and "undone" in again.json()["detail"]
        lookup = await http.post(f"/actions/{ran['calendar_list']}/undo")
        assert lookup.status_code == 409 and "no compensating" in lookup.json()["detail"]
        assert (await http.post("/actions/nope/undo")).status_code == 404

        # The undo replaced the action's "ran alone" in the history: calibration drops.
        learned = {t["tool"]: t for t in (await http.get(
            "/clients/uma/autonomy/learning")).json()}
        cal = learned["calendar_create"]
        assert cal["recent"] == ["undone"] and cal["counts"]["alone"] == 1
        assert cal["successes"] == 0 and cal["failures"] == 1
        assert cal["calibrated_at"]["0.9"] < 0.9
        audit = (await http.get("/clients/uma/audit")).json()
        assert [e["actor"] for e in audit if e["kind"] == "undone"] == ["va1", "va1"]


async def test_pending_approvals_survive_restarts(stack: Stack, org: str,
                                                  fake_anthropic: FakeAnthropic) -> None:
    await setup_client(stack, org, "erin", "suggest")
    script = fake_anthropic.script(f"restart-{org}", [[
        call("calendar_create", title="Offsite", start=START)]])
    assert (await turn(stack, org, "erin", f"{script} plan the offsite"))[-1]["type"] == (
        "turn_completed")
    restart_executor(stack)
    stack.kill_service("context", signal.SIGKILL)
    stack.start_service("context")
    async with api(stack, org) as http:
        pending = (await http.get("/clients/erin/actions")).json()
        assert [a["tool"] for a in pending] == ["calendar_create"]
        for _ in range(100):  # until the restarted executor answers
            decided = await http.post(f"/actions/{pending[0]['action_id']}/decision",
                                      json={"decision": "approve"})
            if decided.status_code != 503:
                break
            await asyncio.sleep(0.2)
        assert decided.status_code == 200 and decided.json()["status"] == "executed"
    assert await titles(stack, org, "erin") == ["Offsite"]


@pytest.mark.parametrize("crash_point", ["after_effect", "before_ack"])
async def test_killed_after_the_effect_acts_once(stack: Stack, org: str, crash_point: str,
                                                 fake_anthropic: FakeAnthropic) -> None:
    await setup_client(stack, org, "kim", "automate")
    subject = f"Exactly once {org}"
    script = fake_anthropic.script(f"once-{org}", [[
        call("calendar_create", title=subject, start=START),
        call("email_send", to=["kim@example.com"], subject=subject, body="Once.")]])
    restart_executor(stack, ACTION_EXECUTOR_TEST_CRASH_POINT=crash_point)
    async with websockets.connect(ws_url(stack, org=org)) as ws:
        await send_message(ws, f"{script} book it and tell kim", client="kim")
        await asyncio.to_thread(stack.procs["action_executor"].wait, 30)  # it killed itself
        assert stack.procs["action_executor"].returncode == -signal.SIGKILL
        restart_executor(stack)
        frames = await frames_until_terminal(ws, timeout=40)
    assert frames[-1]["type"] == "turn_completed", json.dumps(frames[-1])
    assert await titles(stack, org, "kim") == [subject]
    assert len(mail_with(stack, subject)) == 1
    statuses = {f["tool"]: f["status"] for f in frames if f["type"] == "action_result"}
    assert statuses["calendar_create"] == "executed"
    # Mail cannot be looked up over SMTP: killed between sending and storing the outcome, it is
    # reported as possibly sent and never sent twice (at most once).
    assert statuses["email_send"] == ("failed" if crash_point == "after_effect" else "executed")


@pytest.mark.parametrize("crash_at", ["delta", "action_result"])
async def test_context_killed_mid_loop_finishes_the_turn_once(
        stack: Stack, org: str, crash_at: str, fake_anthropic: FakeAnthropic) -> None:
    """SIGKILL context as the client sees the first model call's text (its tool call is on
    its way, and the loop has no state yet) or the action's result (the loop is waiting for
    it): a new context finishes the turn from what JetStream redelivers, with one effect."""
    await setup_client(stack, org, "lee", "automate")
    subject = f"Crash {crash_at} {org}"
    script = fake_anthropic.script(f"crash-{crash_at}-{org}", [
        [{"text": "Booking it."}, call("calendar_create", title=subject, start=START)],
        [{"text": " Booked."}]])
    killed: list[str] = []

    async def crash(frame: dict[str, Any], _: list[dict[str, Any]]) -> None:
        if frame["type"] == crash_at and not killed:
            killed.append(frame["type"])
            await asyncio.to_thread(stack.kill_service, "context", signal.SIGKILL)
            stack.start_service("context")

    async with websockets.connect(ws_url(stack, org=org)) as ws:
        await send_message(ws, f"{script} book it", client="lee")
        frames = await frames_until_terminal(ws, timeout=60, on_frame=crash)
    assert killed == [crash_at]
    done = frames[-1]
    assert done["type"] == "turn_completed", json.dumps(done)
    assert done["text"] == "Booking it.\n\n Booked."
    assert [(f["tool"], f["status"]) for f in frames if f["type"] == "action_result"
            ] == [("calendar_create", "executed")]
    assert await titles(stack, org, "lee") == [subject]


async def test_the_loop_stops_at_max_iterations(stack: Stack, org: str,
                                                fake_anthropic: FakeAnthropic) -> None:
    await setup_client(stack, org, "lee", "automate")
    script = fake_anthropic.script(f"loop-{org}", [[call("task_list", status="open")]],
                                   repeat_last=True)
    frames = await turn(stack, org, "lee", f"{script} keep checking my tasks")
    done = frames[-1]
    assert done["type"] == "turn_completed" and done["stop_reason"] == "max_iterations"
    assert "Stopped" in done["text"]
    assert len([f for f in frames if f["type"] == "action_result"]) == MAX_ITERATIONS - 1


def test_no_service_was_refused_anything_on_the_bus(stack: Stack) -> None:
    """Runs last in this module: everything above ran under each service's own NATS user."""
    assert stack.permission_violations() == []
