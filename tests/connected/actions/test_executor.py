"""The action_executor against real NATS, Valkey, Radicale and an SMTP server: policy
outcomes, approvals (approve, reject, edit, twice, expiry), idempotent redelivery, real
calendar events and real mail, readable failures, and an audit log without mail bodies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from nats.aio.client import Client

from switchboard_action_executor.adapters.caldav import CalDav
from switchboard_cli.embedded import ServerProcess
from switchboard_common.action_store import ActionStore
from switchboard_common.actions import ActionResult, DecideAction, DecideReply, UndoAction
from tests.connected.actions.conftest import event_args, mails, proposal, propose
from tests.connected.helpers import Collector, nats_client

pytestmark = pytest.mark.connected

Servers = tuple[ServerProcess, ServerProcess, Path]


async def results(nc: Client, org: str) -> Collector:
    got = Collector()
    await nc.subscribe(f"actions.results.{org}", cb=got.handle)
    return got


async def decide(nc: Client, org: str, action_id: str, approve: bool = True,
                 arguments: dict[str, Any] | None = None) -> DecideReply:
    msg = await nc.request(f"actions.decide.{org}", DecideAction(
        org_id=org, action_id=action_id, user_id="va1", approve=approve,
        arguments=arguments).model_dump_json().encode(), timeout=15)
    return DecideReply.model_validate_json(msg.data)


async def calendar_titles(servers: Servers, org: str, client: str = "sarah") -> list[str]:
    cal = CalDav(servers[0].url, "switchboard")
    try:
        events = await cal.list(org, client, datetime(2030, 1, 1, tzinfo=UTC),
                                datetime(2033, 1, 1, tzinfo=UTC))
    finally:
        await cal.close()
    return [e["title"] for e in events]


async def test_automate_high_confidence_creates_a_real_event(
        executor: None, nats_url: str, org: str, tool_servers: Servers) -> None:
    async with nats_client(nats_url) as nc:
        got = await results(nc, org)
        frames = Collector()
        await nc.subscribe(f"turns.events.{org}.t1", cb=frames.handle)
        p = proposal(org, "calendar_create", event_args("Board prep"))
        await propose(nc, p)
        await propose(nc, p.model_copy(update={"message_id": "again"}))  # a re-publish
        items = await got.wait_for(lambda i: i)
        result = ActionResult.model_validate(items[0])
        assert result.status == "executed" and result.output["event_id"] == p.action_id
        assert result.tool_use_id == "toolu_1" and not result.is_error
        await frames.wait_for(lambda i: any(f["type"] == "action_result" for f in i))
    assert await calendar_titles(tool_servers, org) == ["Board prep"]


@pytest.mark.parametrize(("mode", "tool", "confidence", "status"), [
    ("suggest", "task_add", 0.99, "pending"),
    ("assist", "task_add", 0.95, "executed"),
    ("assist", "email_send", 0.99, "pending"),
    ("automate", "task_add", 0.7, "pending"),
    ("automate", "task_add", 0.2, "needs_input"),
    ("automate", "task_add", None, "needs_input"),
])
async def test_policy_outcomes(executor: None, nats_url: str, org: str, mode: str, tool: str,
                               confidence: float | None, status: str) -> None:
    args = ({"title": "Call the bank"} if tool == "task_add" else
            {"to": ["cfo@example.com"], "subject": "Budget", "body": "Numbers attached."})
    async with nats_client(nats_url) as nc:
        got = await results(nc, org)
        await propose(nc, proposal(org, tool, args, confidence=confidence, mode=mode))
        items = await got.wait_for(lambda i: i)
        assert items[0]["status"] == status


async def test_approve_then_decide_twice(executor: None, nats_url: str, org: str,
                                         valkey: redis.Redis, tool_servers: Servers) -> None:
    async with nats_client(nats_url) as nc:
        frames = Collector()
        await nc.subscribe(f"turns.events.{org}.t1", cb=frames.handle)
        p = proposal(org, "email_send", {"to": ["dana@example.com"], "subject": "Agenda",
                                         "body": "PRIVATE-BODY see you at 10"}, mode="assist")
        await propose(nc, p)
        card = (await frames.wait_for(lambda i: i))[0]
        assert card["type"] == "action_pending" and card["action_id"] == p.action_id
        assert card["risky"] is True and card["arguments"]["subject"] == "Agenda"
        before = len(mails(tool_servers[2]))
        reply = await decide(nc, org, p.action_id)
        assert reply.ok and reply.record and reply.record.status == "executed"
        assert reply.record.decision and reply.record.decision.by == "va1"
        again = await decide(nc, org, p.action_id, approve=False)
        assert not again.ok and again.code == "action_already_decided"
        assert again.record and again.record.status == "executed"
    sent = mails(tool_servers[2])
    assert len(sent) == before + 1
    assert any(m["Message-ID"] == f"<{p.action_id}@switchboard>" for m in sent)
    store = ActionStore(valkey)
    log = await store.audit_log(org, "sarah")
    assert [e.kind for e in reversed(log)] == ["proposed", "decided", "executed"]
    assert "PRIVATE-BODY" not in "".join(e.model_dump_json() for e in log)
    assert log[0].details["duration_ms"] is not None


async def test_reject_and_edit(executor: None, nats_url: str, org: str,
                               tool_servers: Servers) -> None:
    async with nats_client(nats_url) as nc:
        got = await results(nc, org)
        a = proposal(org, "calendar_create", event_args("Lunch"), mode="suggest", call="c1")
        b = proposal(org, "calendar_create", event_args("Dinner"), mode="suggest", call="c2")
        await propose(nc, a)
        await propose(nc, b)
        await got.wait_for(lambda i: len(i) == 2)
        rejected = await decide(nc, org, a.action_id, approve=False)
        assert rejected.ok and rejected.record and rejected.record.status == "rejected"
        bad = await decide(nc, org, b.action_id, arguments={"title": ""})
        assert not bad.ok and bad.code == "invalid_arguments" and "title" in bad.message
        edited = await decide(nc, org, b.action_id,
                              arguments=event_args("Dinner with Dana", "2031-05-07T19:00:00Z"))
        assert edited.ok and edited.record and edited.record.decision
        assert edited.record.decision.edited and edited.record.status == "executed"
        statuses = await got.wait_for(lambda i: len(i) == 4)
        assert sorted(s["status"] for s in statuses) == [
            "executed", "pending", "pending", "rejected"]
    assert await calendar_titles(tool_servers, org) == ["Dinner with Dana"]


async def test_pending_actions_expire(nats_url: str, valkey_url: str, org: str,
                                      tool_servers: Servers) -> None:
    from switchboard_action_executor.main import build_app
    from tests.connected.actions.conftest import executor_settings

    app = build_app(executor_settings(nats_url, valkey_url, tool_servers, approval_ttl_s=0.5))
    await app.start()
    try:
        async with nats_client(nats_url) as nc:
            got = await results(nc, org)
            p = proposal(org, "task_add", {"title": "Renew passport"}, mode="suggest")
            await propose(nc, p)
            items = await got.wait_for(lambda i: [x for x in i if x["status"] == "expired"])
            assert [x["status"] for x in items] == ["pending", "expired"]
            late = await decide(nc, org, p.action_id)
            assert not late.ok and late.code == "action_expired"
    finally:
        await app.stop()


async def test_refusals_are_readable(executor: None, nats_url: str, org: str) -> None:
    async with nats_client(nats_url) as nc:
        got = await results(nc, org)
        disabled = proposal(org, "task_add", {"title": "x"}, call="c1").model_copy(
            update={"enabled_tools": ["calendar_list"]})
        await propose(nc, disabled)
        await propose(nc, proposal(org, "calendar_create", {"title": "no start"}, call="c2"))
        await propose(nc, proposal(org, "calendar_delete", {"event_id": "nope"}, call="c3"))
        items = await got.wait_for(lambda i: len(i) == 3)
        by_call = {i["tool_use_id"]: i for i in items}
        assert by_call["c1"]["status"] == "refused" and "not enabled" in by_call["c1"]["message"]
        assert by_call["c2"]["status"] == "refused" and "start" in by_call["c2"]["message"]
        assert by_call["c3"]["status"] == "failed" and "no event" in by_call["c3"]["message"]
        assert all(i["is_error"] for i in items)


async def test_bad_arguments_are_refused_at_once_and_nothing_personal_is_logged(
        executor: None, nats_url: str, org: str, tool_servers: Servers,
        caplog: pytest.LogCaptureFixture) -> None:
    address = "jane.doe+1-555-0100@@example..com"
    async with nats_client(nats_url) as nc:
        got = await results(nc, org)
        started = asyncio.get_running_loop().time()
        await propose(nc, proposal(org, "email_send", {
            "to": [address], "subject": "Hi", "body": "call me at +1 555 0100"},
            confidence=1.0, call="m1"))
        await propose(nc, proposal(org, "calendar_create", {
            "title": "Naive", "start": "2031-05-06T09:00:00"}, call="m2"))
        items = await got.wait_for(lambda i: len(i) == 2)
        assert asyncio.get_running_loop().time() - started < 5  # at once, no redelivery
    by_call = {i["tool_use_id"]: i for i in items}
    mail = by_call["m1"]
    assert mail["status"] == "refused" and mail["code"] == "invalid_arguments"
    assert "to.0" in mail["message"] and address not in mail["message"]
    assert by_call["m2"]["code"] == "invalid_arguments" and "start" in by_call["m2"]["message"]
    assert not mails(tool_servers[2]) or all(m["Subject"] != "Hi" for m in mails(tool_servers[2]))
    assert address not in caplog.text and "555" not in caplog.text


async def test_calls_of_one_response_run_concurrently(executor: None, nats_url: str, org: str,
                                                      tool_servers: Servers) -> None:
    async with nats_client(nats_url) as nc:
        got = await results(nc, org)
        started = asyncio.get_running_loop().time()
        for n in range(4):
            await propose(nc, proposal(org, "calendar_create", event_args(f"Slot {n}"),
                                       call=f"c{n}"))
        items = await got.wait_for(lambda i: len(i) == 4)
        assert {i["status"] for i in items} == {"executed"}
        assert asyncio.get_running_loop().time() - started < 10
    assert sorted(await calendar_titles(tool_servers, org)) == [f"Slot {n}" for n in range(4)]


async def test_unreachable_server_is_retried_then_fails_readably(
        nats_url: str, valkey_url: str, org: str, tool_servers: Servers) -> None:
    from switchboard_action_executor.main import build_app
    from switchboard_cli.embedded import free_port
    from tests.connected.actions.conftest import executor_settings

    settings = executor_settings(nats_url, valkey_url, tool_servers).model_copy(
        update={"caldav_url": f"http://127.0.0.1:{free_port()}/"})
    app = build_app(settings)
    await app.start()
    try:
        async with nats_client(nats_url) as nc:
            got = await results(nc, org)
            await propose(nc, proposal(org, "calendar_create", event_args("x")))
            items = await got.wait_for(lambda i: i)
            assert items[0]["status"] == "failed"
            assert "unreachable" in items[0]["message"] and "3 attempts" in items[0]["message"]
    finally:
        await app.stop()


async def test_a_client_with_its_own_servers_gets_its_events_and_mail_there(
        nats_url: str, valkey_url: str, org: str, tool_servers: Servers,
        tmp_path: Path) -> None:
    """Per-client connections (set through the REST API in production): John's calendar and
    mail go to his own CalDAV and SMTP servers; Sarah keeps the deployment's. His servers are
    on loopback, so the executor must be told to allow them (OUTBOUND_ALLOW)."""
    from switchboard_action_executor.main import build_app
    from switchboard_cli.embedded import mail_dir, start_radicale, start_smtp
    from switchboard_common.connections import (
        CalDavConnection,
        ClientConnections,
        ConnectionStore,
        SmtpConnection,
    )
    from switchboard_common.secretbox import SecretBox
    from tests.connected.actions.conftest import executor_settings

    own_caldav, own_smtp = start_radicale(tmp_path), start_smtp(tmp_path)
    app = build_app(executor_settings(
        nats_url, valkey_url, tool_servers,
        outbound_allow=f"127.0.0.1:{own_caldav.port},127.0.0.1:{own_smtp.port}"))
    await app.start()
    valkey = redis.Redis.from_url(valkey_url)
    try:
        # The executor under test runs in development without SECRETS_KEYS: the same box.
        box = SecretBox.from_setting(None, "development")
        await ConnectionStore(valkey, box).put(org, "john", ClientConnections(
            caldav=CalDavConnection(url=own_caldav.url),
            smtp=SmtpConnection(host="127.0.0.1", port=own_smtp.port, starttls=False,
                                mail_from="assistant@john.example")))
        async with nats_client(nats_url) as nc:
            got = await results(nc, org)
            for client, call in (("john", "toolu_1"), ("sarah", "toolu_2")):
                await propose(nc, proposal(org, "calendar_create",
                                           event_args(f"{client} review"), call=call,
                                           client=client))
            await propose(nc, proposal(org, "email_send", {
                "to": ["cfo@example.com"], "subject": f"Hello {org}", "body": "Hi."},
                call="toolu_3", client="john"))
            items = await got.wait_for(lambda i: len(i) >= 3, timeout=20)
            assert all(i["status"] == "executed" for i in items), items
        own = (own_caldav, own_smtp, mail_dir(tmp_path))
        assert await calendar_titles(own, org, "john") == ["john review"]
        assert await calendar_titles(tool_servers, org, "john") == []
        assert await calendar_titles(tool_servers, org, "sarah") == ["sarah review"]
        sent = [m for m in mails(mail_dir(tmp_path)) if m["Subject"] == f"Hello {org}"]
        assert len(sent) == 1 and sent[0]["From"] == "assistant@john.example"
        assert not [m for m in mails(tool_servers[2]) if m["Subject"] == f"Hello {org}"]
    finally:
        await valkey.aclose()
        await asyncio.wait_for(app.stop(), 15)
        own_smtp.stop()
        own_caldav.stop()


async def test_client_servers_on_private_or_platform_addresses_are_refused_at_connect_time(
        executor: None, nats_url: str, valkey_url: str, org: str) -> None:
    """Written around the REST check (or a name that resolves elsewhere now): the executor
    checks again before connecting and fails the call for good, without trying."""
    from switchboard_common.connections import (
        CalDavConnection,
        ClientConnections,
        ConnectionStore,
        SmtpConnection,
    )
    from switchboard_common.secretbox import SecretBox

    nats_port = int(nats_url.rsplit(":", 1)[1])
    valkey = redis.Redis.from_url(valkey_url)
    try:
        await ConnectionStore(valkey, SecretBox.from_setting(None, "development")).put(
            org, "john", ClientConnections(
                caldav=CalDavConnection(url=f"http://127.0.0.1:{nats_port}/"),
                smtp=SmtpConnection(host="169.254.169.254", port=25, starttls=False,
                                    mail_from="assistant@john.example")))
        async with nats_client(nats_url) as nc:
            got = await results(nc, org)
            await propose(nc, proposal(org, "calendar_create", event_args("x"),
                                       call="toolu_1", client="john"))
            await propose(nc, proposal(org, "email_send", {
                "to": ["cfo@example.com"], "subject": "Hi", "body": "Hi."},
                call="toolu_2", client="john"))
            items = await got.wait_for(lambda i: len(i) >= 2, timeout=20)
        assert all(i["status"] == "failed" for i in items), items
        messages = " ".join(i["message"] for i in items)
        assert "calendar server is refused" in messages and "mail server is refused" in messages
        assert "not a public address" in messages
    finally:
        await valkey.aclose()


async def undo(nc: Client, org: str, action_id: str) -> DecideReply:
    msg = await nc.request(f"actions.undo.{org}", UndoAction(
        org_id=org, action_id=action_id, user_id="va1").model_dump_json().encode(), timeout=30)
    return DecideReply.model_validate_json(msg.data)


async def test_a_failed_undo_changes_nothing_and_can_be_tried_again(
        nats_url: str, valkey_url: str, org: str, tool_servers: Servers) -> None:
    from switchboard_action_executor.main import build_app
    from switchboard_cli.embedded import free_port
    from tests.connected.actions.conftest import executor_settings

    settings = executor_settings(nats_url, valkey_url, tool_servers)
    async with nats_client(nats_url) as nc:
        got = await results(nc, org)
        app = build_app(settings)
        await app.start()
        try:
            p = proposal(org, "calendar_create", event_args("Undo me"))
            await propose(nc, p)
            assert (await got.wait_for(lambda i: i))[0]["status"] == "executed"
        finally:
            await app.stop()
        # The calendar server is unreachable now: the compensation fails, nothing changes.
        app = build_app(settings.model_copy(
            update={"caldav_url": f"http://127.0.0.1:{free_port()}/"}))
        await app.start()
        try:
            failed = await undo(nc, org, p.action_id)
        finally:
            await app.stop()
        assert not failed.ok and failed.code == "service_unavailable"
        assert failed.record is not None and failed.record.status == "executed"
        assert await calendar_titles(tool_servers, org) == ["Undo me"]
        app = build_app(settings)
        await app.start()
        try:
            done = await undo(nc, org, p.action_id)
        finally:
            await app.stop()
    assert done.ok and done.record is not None and done.record.status == "undone"
    assert await calendar_titles(tool_servers, org) == []
