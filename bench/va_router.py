"""The local model's router (and optionally its argument step) on the labelled VA requests,
in-process: no services, about a second per request instead of ~15 s end to end.

Each request becomes the ModelRequest context would send for it (context's own prompt
builder: persona, skills, the date lines in the client's zone, the request's resolved dates;
no history and no retrieved memory, as for a new conversation with an empty memory), and the
adapter's own route step (`LocalProvider.route`) decides. The router records how far the best
tool's first-token logit was above `none`'s (the gap) and the run routes with every margin at
0, so one run scores every choice of margins: a tool is chosen when its gap exceeds its
margin. Printed: the confusion table at the service's margins, no-tool calls and right tool
over a grid of margins (all tools; email_draft's own), ms per request;
with `--args`, also the argument step (scored like bench/va_requests.py after context's
normalisation) and the tokens each step evaluated (the rest of its prompt was reused).

With `--memory` every request comes with two remembered turns (`MEMORY`), one naming an
e-mail address: the tools needing an address are then offered to the router for every request.

Usage: python bench/va_router.py [--data FILE ...] [--model KEY] [--margin M] [--email-margin M]
         [--args] [--memory] [--limit N] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.va_requests import TOOLS  # noqa: E402
from bench.va_scoring import args_ok  # noqa: E402
from switchboard_common.model import ModelRequest  # noqa: E402
from switchboard_common.skills import Skills  # noqa: E402
from switchboard_common.tools import CATALOG, model_tools  # noqa: E402
from switchboard_context.domain import complexity, dates, prompt  # noqa: E402
from switchboard_llm_stream.adapters.local import LocalProvider  # noqa: E402
from switchboard_llm_stream.adapters.model_files import default_models_dir  # noqa: E402
from switchboard_llm_stream.domain import local_tools  # noqa: E402
from switchboard_llm_stream.domain.local_models import MODELS  # noqa: E402
from switchboard_llm_stream.settings import Settings  # noqa: E402

SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0)


MEMORY = (
    prompt.RetrievedItem(id="m1", source="turn", occurred_at="2026-11-20",
                         text="Client: Send the revised budget to olivia.brandt@fernhill.co. "
                              "Assistant: I drafted the e-mail to olivia.brandt@fernhill.co."),
    prompt.RetrievedItem(id="m2", source="turn", occurred_at="2026-11-24",
                         text="Client: Put the supplier review on Thursday at 2. Assistant: "
                              "I added Supplier review on Thursday at 14:00 to your calendar."),
)
"""With `--memory`: two remembered turns, one naming an address, as a client with some
history has them retrieved (written for the bench, unlike any labelled request)."""


def model_request(client: str, info: dict[str, str], text: str, now: datetime,
                  memory: bool = False) -> ModelRequest:
    """What context sends for `text` as the first turn of a conversation (flow.start)."""
    skills = Skills.model_validate({
        "timezone": info["timezone"], "enabled_tools": TOOLS,
        "autonomy": {"mode": "suggest",
                     "default": {"auto_execute": 1.0, "require_approval": 0.0}}})
    canary = f"sbc-{abs(hash(client)) % 10**20:020d}"
    built = prompt.build(
        prompt.PromptInputs(client_id=client, client_name=info["name"], skills=skills,
                            history=(), user_text=text, canary=canary,
                            retrieved=MEMORY if memory else (),
                            now=dates.date_context(info["timezone"], now, text)),
        complexity.estimate(text), history_budget_tokens=2000, lite_messages=4)
    return ModelRequest(
        org_id="bench", turn_id=f"t{abs(hash(text)) % 10**8}", user_id="va1", client_id=client,
        conversation_id="c", system=built.system, context=built.context, recall=built.recall,
        messages=built.messages, max_tokens=48, deadline_at=now + timedelta(minutes=10),
        tools=model_tools(TOOLS), canary=canary, leak_markers=list(prompt.LEAK_MARKERS))


def run(local: LocalProvider, data: dict[str, Any], *, with_args: bool,
        limit: int, memory: bool = False) -> list[dict[str, Any]]:
    requests = data["requests"]
    if limit:
        requests = requests[::max(1, len(requests) // limit)][:limit]
    rows = []
    for item in requests:
        info = data["clients"][item["client"]]
        now = datetime.now(UTC)
        request = model_request(item["client"], info, item["text"], now, memory)
        began = time.perf_counter()
        route = local.route(request)
        row: dict[str, Any] = {"want": item["tool"], "got": route.name, "gap": route.gap,
                               "route_ms": (time.perf_counter() - began) * 1000,
                               "text": item["text"], "steps": [vars(s) for s in local.steps]}
        if with_args and route.name != local_tools.NONE:
            tool = next(t for t in request.tools if t.name == route.name)
            raw = local.arguments(request, tool)
            args = {k: v for k, v in raw.items() if k not in ("confidence", "rationale")}
            args = dates.normalise_arguments(CATALOG[route.name].input, args, info["timezone"])
            row["steps"] += [vars(s) for s in local.steps]
            row["arguments"] = raw
            row["args_ok"] = (args_ok(args, item["args"], info["timezone"], now)
                              if route.name == item["tool"] and item.get("args") else None)
        rows.append(row)
        print(f"  {row['want']:>15} <- {row['got']:<15} gap {route.gap or 0:+6.2f} "
              f"{row['route_ms']:6.0f} ms {item['text'][:50]} | "
              + "; ".join(f"{s['name']} {s['evaluated']}/{s['tokens']} {s['ms']:.0f} ms"
                          for s in row["steps"]), file=sys.stderr, flush=True)
    return rows


Margins = tuple[float, dict[str, float]]


def chosen(row: dict[str, Any], margins: Margins) -> str:
    """The route at these margins (every tool's, some tools' own). The run routed with
    margins 0; a margin only moves a tool against `none`, so the tool the router named stays
    the tool while its gap exceeds its margin."""
    name = str(row["got"])
    default, own = margins
    if row["gap"] is None or name == local_tools.NONE or row["gap"] <= own.get(name, default):
        return local_tools.NONE
    return name


def scores(rows: list[dict[str, Any]], margins: Margins) -> str:
    nones = [r for r in rows if r["want"] == local_tools.NONE]
    actions = [r for r in rows if r["want"] != local_tools.NONE]
    calls = sum(chosen(r, margins) != local_tools.NONE for r in nones)
    right = sum(chosen(r, margins) == r["want"] for r in actions)
    return f"{calls}/{len(nones)}, {right}/{len(actions)}"


def report(name: str, rows: list[dict[str, Any]], margins: Margins) -> None:
    print(f"\n{name}: {len(rows)} requests, route margin {margins[0]:g}, "
          f"own margins {margins[1]}\n")
    labels = [*TOOLS, local_tools.NONE]
    counts = Counter((r["want"], chosen(r, margins)) for r in rows)
    print("| want \\ got | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for want in labels:
        if any(w == want for w, _ in counts):
            print(f"| {want} | " + " | ".join(str(counts[(want, g)] or ".") for g in labels)
                  + " |")
    print("\nno-tool calls, right tool on actions; rows: every tool's margin, columns: "
          "email_draft's margin\n")
    print("| margin \\ email_draft | " + " | ".join(f"{m:g}" for m in SWEEP) + " |")
    print("|---" * (len(SWEEP) + 1) + "|")
    for m in SWEEP:
        print(f"| {m:g} | " + " | ".join(scores(rows, (m, {"email_draft": max(m, e)}))
                                         for e in SWEEP) + " |")
    ms = [r["route_ms"] for r in rows]
    print(f"\nroute: median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms")
    argued = [r for r in rows if r.get("args_ok") is not None]
    if argued:
        print(f"arguments right: {sum(r['args_ok'] for r in argued)}/{len(argued)}")
    by_step: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        for s in r["steps"]:
            by_step.setdefault(s["name"], []).append(s)
    for step, got in by_step.items():
        print(f"{step}: median {statistics.median(s['tokens'] for s in got):.0f} tokens, "
              f"{statistics.median(s['evaluated'] for s in got):.0f} evaluated in "
              f"{statistics.median(s['prompt_ms'] for s in got):.0f} ms, step "
              f"{statistics.median(s['ms'] for s in got):.0f} ms (n={len(got)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, nargs="+", default=[
        ROOT / "bench" / "data" / "va_requests.json",
        ROOT / "bench" / "data" / "va_requests_holdout.json"])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--margin", type=float, default=None,
                        help="report at this margin for every tool (default: the service's)")
    parser.add_argument("--email-margin", type=float, default=None,
                        help="report at this margin for email_draft (default: the service's)")
    parser.add_argument("--args", action="store_true", help="also run the argument step")
    parser.add_argument("--memory", action="store_true",
                        help="every request with two remembered turns, one naming an address")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="model threads (default: the service's setting; 1 is steadier "
                             "on a machine others are using)")
    parser.add_argument("--out", type=Path, default=ROOT / ".switchboard" / "bench")
    ns = parser.parse_args()
    settings = Settings()
    local = LocalProvider(MODELS[ns.model], path=None, models_dir=default_models_dir(),
                          n_ctx=settings.local_n_ctx,
                          n_threads=ns.threads or settings.local_threads,
                          max_tokens_cap=48)
    local._load()
    ns.out.mkdir(parents=True, exist_ok=True)
    for path in ns.data:
        rows = run(local, json.loads(path.read_text()), with_args=ns.args, limit=ns.limit,
                   memory=ns.memory)
        name = f"router-{path.stem}-{ns.model}{'-memory' if ns.memory else ''}.json"
        (ns.out / name).write_text(json.dumps(rows, indent=1))
        own = dict(settings.local_route_margins)
        if ns.email_margin is not None:
            own["email_draft"] = ns.email_margin
        report(path.name, rows,
               (settings.local_route_margin if ns.margin is None else ns.margin, own))


if __name__ == "__main__":
    main()
