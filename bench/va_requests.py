"""Offline assistant evaluation: labelled VA requests against the local model, through the real
services (every service its own process, NATS, Valkey, Radicale, SMTP), over the WebSocket.

Each request (bench/data/va_requests.json: four clients in four time zones; calendar, mail,
tasks, memory questions and requests that must not call a tool) is sent in a conversation of
its own. The client's autonomy is `suggest` with `require_approval` 0, so every call the model
makes shows up as a frame (an approval card, or the result of a read-only lookup) carrying the
tool and its arguments. Measured per model, per category (the labelled tool) and overall:

  right tool        the first action's tool is the labelled one (`none`: no action at all)
  no-tool calls     share of `none` requests that got an action anyway
  arguments         share of correctly routed calls whose arguments match the label (dates
                    resolved in the client's zone on the day the request ran, recipients,
                    key words)
  time to proposal  median and p90 seconds from sending the message to the first action frame

Every request's outcome is appended to a JSON-lines file as soon as it is known, so a run cut
short still reports (`--report`), and `--resume` continues where it stopped.

Usage: python bench/va_requests.py [--models qwen2.5-coder-1.5b,qwen2.5-coder-0.5b,smollm2-135m]
         [--limit N] (every n-th request, keeping the mix) [--data FILE] [--out DIR]
         [--only TOOL,...] [--resume] [--report]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.va_scoring import args_ok, table  # noqa: E402
from switchboard_cli.stack import Stack, start_stack  # noqa: E402
from tests.people import add_people  # noqa: E402

TOOLS = ["calendar_create", "calendar_list", "email_draft", "task_add", "task_list",
         "memory_search"]
ACTION_FRAMES = ("action_pending", "action_result")


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
                            "total": time.monotonic() - sent,
                            "text": str(frame.get("text") or frame.get("message") or "")[:400],
                            "usage": frame.get("usage")}


def outcome(model: str, request: dict[str, Any], got: dict[str, Any], zone: str
            ) -> dict[str, Any]:
    """One JSON line: enough to score again later (dates are judged against the day the
    request ran, so a report printed tomorrow is still right) and to read the failure."""
    action = got["action"] or {}
    ran_at = datetime.now(UTC)
    arguments = action.get("arguments") or {}
    return {"model": model, "client": request["client"], "text": request["text"],
            "want": request["tool"], "got": action.get("tool", "none"),
            "arguments": arguments, "status": action.get("status") or action.get("type"),
            "args_ok": (args_ok(arguments, request["args"], zone, ran_at)
                        if action.get("tool") == request["tool"] and request.get("args")
                        else None),
            "took": got["took"], "total": got["total"], "end": got["end"],
            "answer": got.get("text", ""), "usage": got.get("usage"),
            "ran_at": ran_at.isoformat(),
            "load": os.getloadavg()[0]}


async def evaluate(model: str, requests: list[dict[str, Any]], clients: dict[str, Any],
                   timeout: float, out: Path) -> None:
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
            for request in requests:
                try:
                    got = await one(url, request, timeout)
                except (TimeoutError, OSError, websockets.ConnectionClosed) as exc:
                    got = {"action": None, "took": None, "end": type(exc).__name__,
                           "total": timeout}
                row = outcome(model, request, got, clients[request["client"]]["timezone"])
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                verdict = {None: "-", True: "args ok", False: "args WRONG"}[row["args_ok"]]
                took = f"{row['took']:.1f}s" if row["took"] is not None else "-"
                print(f"  {model}: {row['want']:>15} <- {row['got']:<15} proposal {took:>7} "
                      f"turn {row['total']:6.1f}s {row['end']:<15} {verdict:<10} "
                      f"load {row['load']:.1f} {request['text'][:50]}",
                      file=sys.stderr, flush=True)
        finally:
            stack.stop()


def recorded(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="qwen2.5-coder-1.5b,qwen2.5-coder-0.5b,smollm2-135m")
    parser.add_argument("--limit", type=int, default=0,
                        help="evaluate about this many requests (every n-th)")
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data" / "va_requests.json")
    parser.add_argument("--out", type=Path, default=ROOT / ".switchboard" / "bench",
                        help="where the per-request results (JSON lines) are written")
    parser.add_argument("--resume", action="store_true",
                        help="keep earlier results and run only the requests they lack")
    parser.add_argument("--report", action="store_true",
                        help="print the tables from earlier results, run nothing")
    parser.add_argument("--only", default="",
                        help="only the requests labelled with these tools (comma-separated; "
                             "`none` for those that must not call one)")
    parser.add_argument("--timeout", type=float, default=620.0)
    ns = parser.parse_args()
    data = json.loads(ns.data.read_text())
    requests = [r for r in data["requests"] if not ns.only or r["tool"] in ns.only.split(",")]
    if ns.limit:
        requests = requests[::max(1, len(requests) // ns.limit)][:ns.limit]
    ns.out.mkdir(parents=True, exist_ok=True)
    for model in ns.models.split(","):
        path = ns.out / f"{ns.data.stem}-{model}.jsonl"
        if not ns.report:
            if not ns.resume:
                path.unlink(missing_ok=True)
            done = {(r["client"], r["text"]) for r in recorded(path)}
            todo = [r for r in requests if (r["client"], r["text"]) not in done]
            if todo:
                asyncio.run(evaluate(model, todo, data["clients"], ns.timeout, path))
        wanted = {(r["client"], r["text"]) for r in requests}
        rows = [r for r in recorded(path) if (r["client"], r["text"]) in wanted]
        print(f"\n{model}: {len(rows)} of {len(requests)} requests ({ns.data.name}, {path})\n")
        print(table(rows))


if __name__ == "__main__":
    main()
