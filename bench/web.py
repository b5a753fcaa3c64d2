"""The web app's budgets, measured in Debian's Chromium against a real gateway (in-process, over
real NATS and Valkey; no model needed): first meaningful render (navigation start until the
client list is on screen), JavaScript size gzip, switching client (click until the cached
conversation list of that client is painted) and scrolling a 10,000-turn conversation
(virtualised: frame times while scrolling, and how many turns are in the DOM).
Usage: python bench/web.py [--turns 10000] [--clients 30]   (needs `./dev web` first)
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as redis
import uvicorn
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_cli.embedded import free_port, start_nats, start_valkey  # noqa: E402
from switchboard_common.conversations import ConversationStore, TurnRecord  # noqa: E402
from switchboard_common.turns import Usage  # noqa: E402
from switchboard_gateway.main import create_app  # noqa: E402
from switchboard_gateway.settings import Settings  # noqa: E402
from tests.people import add_people  # noqa: E402

ORG, USER = "bench", "va1"
DIST = ROOT / "web" / "dist"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]

# Click a client, then wait for two animation frames: the second runs after the first paint
# that includes the change.
SWITCH_JS = """async (id) => {
  const t0 = performance.now();
  document.querySelector(`button.client[data-client="${id}"]`).click();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const shown = document.querySelector('.convs button.conv[aria-current]');
  return [performance.now() - t0, shown ? shown.textContent : null];
}"""

# Scroll `steps` frames, `px` per frame from the middle (a wheel or a flick), or jump to
# `steps` evenly spread positions across the whole conversation (px = 0, a dragged scrollbar).
SCROLL_JS = """async ([steps, px]) => {
  const el = document.querySelector('.scroller');
  const gaps = []; let most = 0;
  el.scrollTop = (el.scrollHeight - el.clientHeight) / 2;
  await new Promise(r => requestAnimationFrame(r));
  let last = performance.now();
  for (let i = 0; i < steps; i++) {
    if (px) el.scrollTop -= px;
    else el.scrollTop = (el.scrollHeight - el.clientHeight) * (1 - i / steps);
    await new Promise(r => requestAnimationFrame(r));
    const now = performance.now(); gaps.push(now - last); last = now;
    most = Math.max(most, document.querySelectorAll('article.turn').length);
  }
  return [gaps, most];
}"""


def js_gzip_kib() -> tuple[float, float]:
    scripts = list((DIST / "assets").glob("*.js"))
    raw = sum(p.stat().st_size for p in scripts)
    packed = sum(len(gzip.compress(p.read_bytes(), 9)) for p in scripts)
    return raw / 1024, packed / 1024


async def seed(valkey_url: str, clients: int, turns: int) -> None:
    r = redis.Redis.from_url(valkey_url)
    store = ConversationStore(r)
    for c in range(clients):
        for conv in range(3):
            await store.append_turn(ORG, USER, f"c{c}", f"conv{conv}", TurnRecord(
                turn_id=f"c{c}-{conv}", user_text="hi", assistant_text="hello", model="m",
                provider="p", usage=Usage()))
    pipe = r.pipeline(transaction=False)
    for i in range(turns):  # the long conversation, written in one pipeline
        pipe.rpush(f"conv:{ORG}:{USER}:c0:long:turns", TurnRecord(
            turn_id=f"long-{i}", user_text=f"Question {i}: what is next on the agenda?",
            assistant_text=f"Answer {i}. " + "Here is a paragraph of the answer. " * (i % 7),
            model="m", provider="p", usage=Usage(output_tokens=10)).model_dump_json())
    pipe.zadd(f"convs:{ORG}:{USER}:c0", {"long": time.time() + 10})
    await pipe.execute()
    await r.aclose()


async def main(turns: int, clients: int) -> None:
    if not (DIST / "index.html").exists():
        sys.exit("web/dist missing: run `./dev web` first")
    with tempfile.TemporaryDirectory() as tmp:
        nats_server = start_nats(Path(tmp) / "nats")
        valkey_server = start_valkey(Path(tmp) / "valkey", persist=False)
        try:
            await run(nats_server.url, valkey_server.url, turns, clients)
        finally:
            valkey_server.stop()
            nats_server.stop()


async def run(nats_url: str, valkey_url: str, turns: int, clients: int) -> None:
    # No context service runs here: the page's skill look-ups answer 503, quietly.
    settings = Settings(nats_url=nats_url, valkey_url=valkey_url, port=free_port(),
                        log_level="ERROR", dev_credential=True)
    await add_people(valkey_url, ORG, (USER,))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=settings.port,
                                           log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    base = f"http://127.0.0.1:{settings.port}"
    async with httpx.AsyncClient(base_url=base + "/v1",
                                 headers={"X-Org": ORG, "X-User": USER}) as http:
        for c in range(clients):
            await http.post("/clients", json={"id": f"c{c}", "name": f"Client {c}"})
    await seed(valkey_url, clients, turns)

    rows: list[tuple[str, str, str]] = []
    raw, packed = js_gzip_kib()
    rows.append(("JavaScript, gzip", f"{packed:.1f} KiB ({raw:.1f} KiB raw)", "<= 200 KB"))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium",
                                           args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1200, "height": 800})
        renders = []
        for _ in range(5):
            await page.goto(f"{base}/?org={ORG}&user={USER}")
            await page.wait_for_selector("button.client", timeout=10_000)
            renders.append(await page.evaluate("performance.now()"))
        rows.append(("first meaningful render (client list)",
                     f"{statistics.median(renders):.0f} ms (median of 5)", "<= 1 s"))

        for c in range(clients):  # visit each once so their conversations are cached
            await page.evaluate(SWITCH_JS, f"c{c}")
        await asyncio.sleep(1.0)
        switches: list[float] = []
        for c in list(range(1, clients)) * 2:
            took, shown = await page.evaluate(SWITCH_JS, f"c{c}")
            assert shown, "no conversation shown after the switch"
            switches.append(took)
        rows.append(("switch client (cached), to painted",
                     f"p50 {statistics.median(switches):.1f} ms, max {max(switches):.1f} ms",
                     "<= 100 ms"))

        # The long conversation on a fresh page load, so nothing of it is cached.
        await page.evaluate("localStorage.setItem('switchboard.client', 'c1')")
        await page.goto(f"{base}/?org={ORG}&user={USER}")
        await page.wait_for_selector("button.conv", timeout=10_000)
        started = time.perf_counter()
        await page.click("button.client[data-client=c0]")
        await page.wait_for_function(
            "() => document.querySelector('.turns') && "
            "parseFloat(document.querySelector('.turns').style.height) > 100000",
            timeout=120_000)
        rows.append((f"{turns:,}-turn conversation: opened, all history loaded",
                     f"{time.perf_counter() - started:.1f} s", ""))
        for label, steps, px in (("  wheel scrolling (100 px a frame)", 300, 100),
                                 ("  jumping across all of it", 100, 0)):
            gaps, most = await page.evaluate(SCROLL_JS, [steps, px])
            gaps = sorted(gaps)
            p95 = gaps[int(0.95 * (len(gaps) - 1))]
            rows.append((label + ", frame interval", f"p50 {statistics.median(gaps):.1f} ms, "
                         f"p95 {p95:.1f} ms; at most {most} turns in the DOM",
                         "smooth (16.7 ms a frame)"))
        await browser.close()
    server.should_exit = True
    await task
    print_table(rows)


def print_table(rows: list[tuple[str, str, str]]) -> None:
    sys.stdout.write("| measure | result | budget |\n|---|---|---|\n")
    for row in rows:
        sys.stdout.write("| " + " | ".join(row) + " |\n")


def cli(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=30)
    args = parser.parse_args(argv)
    asyncio.run(main(args.turns, args.clients))


if __name__ == "__main__":
    cli()
