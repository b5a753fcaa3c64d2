"""The chat page in a real (headless) Chromium: it streams an answer token by token, clears
partial text on turn_retry and shows which model answered. The back end is played by the test
over real NATS, as in tests/connected/gateway."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from switchboard_cli.embedded import free_port
from tests.connected.gateway.support import Backend, GatewayFactory

pytestmark = [pytest.mark.slow, pytest.mark.connected]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(os.environ.get("SB_SCREENSHOT", "/tmp/switchboard-chat.png"))

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} missing (apt-get install -y chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.async_api",
                                     reason="playwright not installed (pip install playwright)")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                            headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_page_streams_answer_and_shows_model(browser: Any, gateway_factory: GatewayFactory,
                                                   nats_url: str, org: str) -> None:
    port = free_port()
    async with gateway_factory(port=port) as gw:
        nc = await nats.connect(nats_url)
        backend = Backend(nc, org)
        await backend.start()
        page = await browser.new_page(viewport={"width": 900, "height": 640})
        await page.goto(f"{gw.http}/?org={org}&user=va1")
        await page.wait_for_selector("#status[data-state=connected]", timeout=10_000)

        await page.fill("#client", "sarah")
        await page.dispatch_event("#client", "change")
        await page.fill("#message", "What is on my calendar today?")
        await page.press("#message", "Enter")
        turn = await backend.next_turn()
        assert (turn.client_id, turn.text) == ("sarah", "What is on my calendar today?")

        answer = page.locator(".turn .answer").last
        await backend.delta(turn, 1, "Draft ")
        await playwright_api.expect(answer).to_have_text("Draft ")
        await backend.retry(turn, 2)  # partial text is discarded
        await playwright_api.expect(answer).to_have_text("")
        await playwright_api.expect(page.locator(".turn .note")).to_contain_text("retrying")
        await backend.delta(turn, 3, "You have ")
        await playwright_api.expect(answer).to_have_text("You have ")  # token by token
        await backend.delta(turn, 4, "two meetings.")
        await playwright_api.expect(answer).to_have_text("You have two meetings.")
        await backend.done(turn, 5, "You have two meetings.")
        meta = page.locator(".turn .meta").last
        await playwright_api.expect(meta.locator(".model")).to_have_text("fake-1")
        await playwright_api.expect(meta).to_contain_text("4 out tokens")
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        await page.fill("#message", "x" * 20_000)  # too large: a readable error
        await page.press("#message", "Enter")
        await playwright_api.expect(page.locator(".error")).to_contain_text("message_too_large")
        await page.screenshot(path=str(SCREENSHOT.with_stem(SCREENSHOT.stem + "-error")))

        await page.fill("#message", "And tomorrow?")
        await page.press("#message", "Enter")
        turn = await backend.next_turn()
        await backend.delta(turn, 1, "Tomorrow ")
        answer = page.locator(".turn .answer").last
        await playwright_api.expect(answer).to_have_text("Tomorrow ")

    # The gateway restarts mid-answer; what is published meanwhile is kept by SB_TURN_EVENTS.
    await backend.delta(turn, 2, "is ")
    async with gateway_factory(port=port):
        await page.wait_for_selector("#status[data-state=connected]", timeout=10_000)
        await playwright_api.expect(answer).to_have_text("Tomorrow is ")  # resumed after seq 1
        await backend.delta(turn, 3, "free.")
        await backend.done(turn, 4, "Tomorrow is free.")
        await playwright_api.expect(answer).to_have_text("Tomorrow is free.")
        await page.close()
    await nc.close()


async def test_approval_card_is_shown_and_approved_in_one_click(
        browser: Any, gateway_factory: GatewayFactory, nats_url: str, valkey_url: str,
        org: str) -> None:
    """The action_executor's side (the stored action, the decision's reply) is played by the
    test; the page, the gateway and the decision's round trip over NATS are real."""
    import redis.asyncio as redis

    from switchboard_common.action_store import ActionStore
    from switchboard_common.actions import (
        ActionPending,
        ActionRecord,
        DecideAction,
        DecideReply,
        action_decide_subject,
    )

    async with gateway_factory() as gw:
        nc = await nats.connect(nats_url)
        backend = Backend(nc, org)
        await backend.start()
        page = await browser.new_page(viewport={"width": 900, "height": 700})
        await page.goto(f"{gw.http}/?org={org}&user=va1")
        await page.wait_for_selector("#status[data-state=connected]", timeout=10_000)
        await page.fill("#client", "sarah")
        await page.dispatch_event("#client", "change")
        await page.fill("#message", "Email the CFO about the budget review")
        await page.press("#message", "Enter")
        turn = await backend.next_turn()

        record = ActionRecord(action_id="act1", org_id=org, turn_id=turn.turn_id, user_id="va1",
                              client_id="sarah", tool="email_send", status="pending",
                              arguments={"to": ["cfo@example.com"], "subject": "Budget review"},
                              confidence=0.82, rationale="the user asked to mail the CFO",
                              risky=True)
        valkey = redis.Redis.from_url(valkey_url)
        await ActionStore(valkey).create(record)
        decided: list[DecideAction] = []

        async def executor(msg: Any) -> None:
            request = DecideAction.model_validate_json(msg.data)
            decided.append(request)
            done = record.model_copy(update={"status": "executed",
                                             "output": {"message_id": "<m1@example>"}})
            await msg.respond(DecideReply(ok=True, record=done).model_dump_json().encode())

        await nc.subscribe(action_decide_subject(org), cb=executor)
        await backend.emit(turn, ActionPending(
            org_id=org, turn_id=turn.turn_id, action_id="act1", client_id="sarah",
            tool="email_send", arguments=record.arguments, confidence=0.82,
            rationale=record.rationale, risky=True, expires_at=None,
            reason="risky tool in assist mode needs approval"))
        card = page.locator(".card")
        await playwright_api.expect(card).to_contain_text("email_send")
        await playwright_api.expect(card).to_contain_text("82%")
        await playwright_api.expect(card).to_contain_text("cfo@example.com")
        await page.screenshot(path=str(SCREENSHOT.with_stem(SCREENSHOT.stem + "-approval")))

        await card.locator("button.approve").click()
        await playwright_api.expect(card).to_have_attribute("data-status", "executed")
        await playwright_api.expect(card.locator("button.approve")).to_be_disabled()
        assert len(decided) == 1 and decided[0].approve and decided[0].user_id == "va1"
        await page.close()
        await valkey.aclose()
        await nc.close()


async def test_printed_signin_link_signs_the_page_in(browser: Any, gateway_factory: GatewayFactory,
                                                     nats_url: str, org: str,
                                                     tmp_path: Path) -> None:
    """What `switchboard up` prints (its bootstrap, run here against the test's gateway with
    the dev credential off) signs the page in: session, ticket, socket, a turn as the admin."""
    import asyncio

    from switchboard_cli.bootstrap import bootstrap

    async with gateway_factory(dev_credential=False) as gw:
        first = await asyncio.to_thread(bootstrap, gw.settings.valkey_url, tmp_path, gw.http,
                                        org)
        nc = await nats.connect(nats_url)
        backend = Backend(nc, org)
        await backend.start()
        page = await browser.new_page()
        await page.goto(f"{gw.http}/")
        await playwright_api.expect(page.locator("#who")).to_contain_text("not signed in")
        await page.goto(first.link)
        await page.wait_for_selector("#status[data-state=connected]", timeout=10_000)
        await playwright_api.expect(page.locator("#who")).to_have_text(f"{org} / admin")
        assert "signin" not in page.url  # the one-time token is gone from the address bar
        await page.fill("#client", "sarah")
        await page.dispatch_event("#client", "change")
        await page.fill("#message", "Hello")
        await page.press("#message", "Enter")
        turn = await backend.next_turn()
        assert (turn.org_id, turn.user_id, turn.text) == (org, "admin", "Hello")
        await page.reload()  # the session is kept; a fresh ticket opens the socket
        await page.wait_for_selector("#status[data-state=connected]", timeout=10_000)
        await page.close()
        await nc.close()
