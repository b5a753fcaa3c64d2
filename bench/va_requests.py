"""Offline assistant evaluation: labelled VA requests against the local model, through the real
services (every service its own process, NATS, Valkey, Radicale, SMTP), over the WebSocket.

Each request (bench/data/va_requests.json: four clients in four time zones; calendar, mail,
tasks, memory questions and requests that must not call a tool) is sent in a conversation of
its own. The client's autonomy is `suggest` with `require_approval` 0, so every call the model
makes shows up as a frame (an approval card, or the result of a read-only lookup) carrying the
tool and its arguments. Measured per model:

  correct tool      the first action's tool is the labelled one (`none`: no action at all)
  no-tool calls     share of `none` requests that got an action anyway
  arguments         share of correctly routed calls whose arguments match the label (dates
                    resolved in the client's zone, recipients, key words)
  time to proposal  median seconds from sending the message to the first action frame

Usage: python bench/va_requests.py [--models qwen2.5-coder-1.5b,qwen2.5-coder-0.5b,smollm2-135m]
                                   [--limit N] (every n-th request, keeping the mix)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_cli.stack import Stack, start_stack  # noqa: E402
from tests.people import add_people  # noqa: E402

TOOLS = ["calendar_create", "calendar_list", "email_draft", "task_add", "task_list",
         "memory_search"]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ACTION_FRAMES = ("action_pending", "action_result")


def day_of(spec: str, today: date) -> date:
    if spec.startswith("+"):
        return today + timedelta(days=int(spec[1:].rstrip("d")))
    ahead = (WEEKDAYS.index(spec) - today.weekday()) % 7 or 7
    return today + timedelta(days=ahead)


def date_ok(value: Any, spec: str, zone: str, *, with_time: bool) -> bool:
    today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
    day, _, clock = spec.partition(" ")
    try:
        if with_time:
            moment = datetime.fromisoformat(str(value)).astimezone(ZoneInfo(zone))
            got_day, got_clock = moment.date(), moment.strftime("%H:%M")
        else:
            got_day, got_clock = date.fromisoformat(str(value)[:10]), ""
    except ValueError:
        return False
    return got_day == day_of(day, today) and (not clock or got_clock == clock)


def args_ok(args: dict[str, Any], spec: dict[str, Any], zone: str) -> bool:
    for key, want in spec.items():
        if key.endswith("~"):
            text = json.dumps(args.get(key[:-1], "")).lower()
            if not all(word in text for word in want):
                return False
        elif key == "to":
            if not set(want) <= {str(a).lower() for a in args.get("to") or []}:
                return False
        elif key in ("start", "end"):
            if not date_ok(args.get(key), want, zone, with_time=True):
                return False
        elif key == "due" and not date_ok(args.get(key), want, zone, with_time=False):
            return False
    return True


async def setup(stack: Stack, org: str, clients: dict[str, dict[str, str]]) -> None:
    await add_people(stack.store_url, org, ("va1",))
    async with httpx.AsyncClient(base_url=stack.gateway_url + "/v1", timeout=60,
                                 headers={"X-Org": org, "X-User": "va1"}) as http:
        for cid, info in clients.items():
            (await http.post("/clients", json={"id": cid, "name": info["name"]})
             ).raise_for_status()
            (await http.put(f"/clients/{cid}/skills", json={
                "timezone": info["timezone"], "enabled_tools": TOOLS,
                "autonomy": {"mode": "suggest",
                             "default": {"auto_execute": 1.0, "require_approval": 0.0}}})
             ).raise_for_status()


async def one(url: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    # No keepalive pings: a model busy for minutes on a loaded machine is not a dead peer.
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        sent = time.monotonic()
        await ws.send(json.dumps({
            "type": "user_message", "client_id": request["client"], "text": request["text"],
            "idempotency_key": uuid.uuid4().hex, "conversation_id": uuid.uuid4().hex[:12]}))
        first: dict[str, Any] | None = None
        took: float | None = None
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] in ACTION_FRAMES and first is None:
                    first, took = frame, time.monotonic() - sent
                if frame["type"] in ("turn_completed", "error"):
                    return {"action": first, "took": took, "end": frame["type"],
                            "total": time.monotonic() - sent}


async def evaluate(model: str, requests: list[dict[str, Any]], clients: dict[str, Any],
                   timeout: float) -> dict[str, Any]:
    env = {"ANTHROPIC_API_KEY": "", "LLM_STREAM_LOCAL_MODEL": model, "CONTEXT_MAX_TOKENS": "48",
           "GATEWAY_DEV_CREDENTIAL": "true",
           "GATEWAY_TURN_DEADLINE_S": "600", "GATEWAY_TURN_IDLE_TIMEOUT_S": "590",
           "LLM_STREAM_FIRST_TOKEN_TIMEOUT_S": "580", "LLM_STREAM_ACK_WAIT_S": "15",
           "LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), well_known_ports=False, env=env)
        try:
            stack.wait_ready(300)
            org = f"va{uuid.uuid4().hex[:8]}"
            await setup(stack, org, clients)
            url = stack.gateway_url.replace("http://", "ws://") + f"/ws?org={org}&user=va1"
            rows = []
            for request in requests:
                try:
                    got = await one(url, request, timeout)
                except (TimeoutError, OSError, websockets.ConnectionClosed) as exc:
                    got = {"action": None, "took": None, "end": type(exc).__name__,
                           "total": timeout}
                rows.append((request, got))
                action = got["action"]
                verdict = ("-" if not request.get("args") or not action else "args ok"
                           if args_ok(action.get("arguments") or {}, request["args"],
                                      clients[request["client"]]["timezone"]) else "args WRONG")
                took = f"{got['took']:.1f}s" if got["took"] is not None else "-"
                print(f"  {model}: {request['tool']:>15} <- "
                      f"{action['tool'] if action else 'none':<15} proposal {took:>7} "
                      f"turn {got['total']:6.1f}s {got['end']:<15} {verdict:<10} "
                      f"{request['text'][:50]}", file=sys.stderr, flush=True)
        finally:
            stack.stop()
    return score(rows, clients)


def score(rows: list[tuple[dict[str, Any], dict[str, Any]]], clients: dict[str, Any]
          ) -> dict[str, Any]:
    correct = false_calls = none_total = args_total = args_right = failed = 0
    times = []
    for request, got in rows:
        failed += got["end"] != "turn_completed"  # a timeout counts as a wrong answer
        action = got["action"]
        tool = action["tool"] if action else "none"
        if request["tool"] == "none":
            none_total += 1
            false_calls += tool != "none"
        if tool == request["tool"]:
            correct += 1
            if request.get("args"):
                args_total += 1
                args_right += args_ok(action["arguments"] if action else {}, request["args"],
                                      clients[request["client"]]["timezone"])
        if got["took"] is not None:
            times.append(got["took"])
    return {"n": len(rows), "correct_tool": correct / len(rows),
            "false_calls": false_calls / max(none_total, 1),
            "args": args_right / max(args_total, 1),
            "median_proposal_s": statistics.median(times) if times else float("nan"),
            "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="qwen2.5-coder-1.5b,qwen2.5-coder-0.5b,smollm2-135m")
    parser.add_argument("--limit", type=int, default=0,
                        help="evaluate about this many requests (every n-th)")
    parser.add_argument("--timeout", type=float, default=620.0)
    ns = parser.parse_args()
    data = json.loads((ROOT / "bench" / "data" / "va_requests.json").read_text())
    requests = data["requests"]
    if ns.limit:
        requests = requests[::max(1, len(requests) // ns.limit)][:ns.limit]
    results = {m: asyncio.run(evaluate(m, requests, data["clients"], ns.timeout))
               for m in ns.models.split(",")}
    print(f"\n{len(requests)} labelled requests, "
          f"{sum(r['tool'] == 'none' for r in requests)} of them no-tool\n")
    print("| model | correct tool | no-tool calls | arguments correct | median time to proposal "
          "| turns failed (timeouts) |")
    print("|---|---|---|---|---|---|")
    for model, r in results.items():
        print(f"| {model} | {r['correct_tool']:.0%} | {r['false_calls']:.0%} | {r['args']:.0%} "
              f"| {r['median_proposal_s']:.1f} s | {r['failed']} |")


if __name__ == "__main__":
    main()
