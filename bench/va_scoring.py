"""Scoring for bench/va_requests.py: whether arguments match their label, and the table."""

from __future__ import annotations

import json
import statistics
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def day_of(spec: str, today: date) -> date:
    if spec.startswith("+"):
        return today + timedelta(days=int(spec[1:].rstrip("d")))
    ahead = (WEEKDAYS.index(spec) - today.weekday()) % 7 or 7
    return today + timedelta(days=ahead)


def date_ok(value: Any, spec: str, zone: str, ran_at: datetime, *, with_time: bool) -> bool:
    today = ran_at.astimezone(ZoneInfo(zone)).date()
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


def args_ok(args: dict[str, Any], spec: dict[str, Any], zone: str, ran_at: datetime) -> bool:
    for key, want in spec.items():
        if key.endswith("~"):
            text = json.dumps(args.get(key[:-1], "")).lower()
            if not all(word in text for word in want):
                return False
        elif key == "to":
            if not set(want) <= {str(a).lower() for a in args.get("to") or []}:
                return False
        elif key in ("start", "end"):
            if not date_ok(args.get(key), want, zone, ran_at, with_time=True):
                return False
        elif key == "due" and not date_ok(args.get(key), want, zone, ran_at, with_time=False):
            return False
    return True


def _share(hits: int, total: int) -> str:
    return f"{hits}/{total} ({hits / total:.0%})" if total else "-"


def _seconds(times: list[float]) -> str:
    if not times:
        return "-"
    p90 = statistics.quantiles(times, n=10, method="inclusive")[-1] if len(times) > 1 else times[0]
    return f"{statistics.median(times):.1f} s / {p90:.1f} s"


def _line(name: str, rows: list[dict[str, Any]]) -> str:
    right = sum(r["got"] == r["want"] for r in rows)
    no_tool = [r for r in rows if r["want"] == "none"]
    false_calls = sum(r["got"] != "none" for r in no_tool)
    checked = [r for r in rows if r["args_ok"] is not None]
    times = [r["took"] for r in rows if r["took"] is not None]
    failed = sum(r["end"] != "turn_completed" for r in rows)
    return (f"| {name} | {len(rows)} | {_share(right, len(rows))} "
            f"| {_share(false_calls, len(no_tool))} "
            f"| {_share(sum(r['args_ok'] for r in checked), len(checked))} "
            f"| {_seconds(times)} | {failed} |")


def table(rows: list[dict[str, Any]]) -> str:
    """Per labelled tool and overall. A timed-out turn counts as a wrong answer; arguments
    are judged only where the tool was right (a wrong tool already counts once)."""
    if not rows:
        return "(no results)"
    loads = [r["load"] for r in rows]
    lines = ["| category | n | right tool | no-tool calls | arguments correct "
             "| time to proposal (median / p90) | turns failed |",
             "|---|---|---|---|---|---|---|"]
    for want in dict.fromkeys(r["want"] for r in rows):
        lines.append(_line(want, [r for r in rows if r["want"] == want]))
    lines.append(_line("**all**", rows))
    span = f"{rows[0]['ran_at'][:16]} to {rows[-1]['ran_at'][:16]} UTC"
    lines.append(f"\nload average (1 min) during the run: median {statistics.median(loads):.1f}, "
                 f"max {max(loads):.1f}; ran {span}")
    return "\n".join(lines)
