"""What the consumption limits add to a turn: the gateway's `Limiter.admit_turn` (one script:
the month's token budget, the user's and the org's moving windows, the user's concurrent-turn
slot) before the turn starts, and `end_turn` (freeing the slot) after its last frame, against a
real Valkey on loopback. One Valkey round trip (PING) on the same pool is the floor.

Realistic limits (the defaults), so each moving window holds at most its limit of entries.
Prints p50/p99 in a table (docs/performance.md). Not named limits.py: run as a script, that
name would shadow the `limits` package.
Usage: python bench/limit_checks.py [--turns 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_cli.embedded import start_valkey  # noqa: E402
from switchboard_gateway.adapters.limits import Admitted, Limiter  # noqa: E402
from switchboard_gateway.domain.identity import Identity  # noqa: E402
from switchboard_gateway.domain.limits import LimitsUpdate, OrgLimits  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, turns: int) -> dict[str, list[float]]:
    valkey = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        url, max_connections=50, timeout=5))
    # The default limits; turns spread over 20 orgs of 5 users so none is refused (a moving
    # window keeps one entry per hit, at most the limit).
    limiter = Limiter(valkey, url, OrgLimits())
    people = [Identity(org=f"bench{o}", user=f"va{u}") for o in range(20) for u in range(5)]
    for org in {p.org for p in people}:
        # With a budget, so the month's usage is read too (the most a turn's check does).
        await limiter.update(org, LimitsUpdate(monthly_token_budget=10**12))
    out: dict[str, list[float]] = {"ping": [], "admit": [], "end": []}
    for i in range(turns + 200):  # the first 200 warm the pool, the scripts and the cache
        who = people[i % len(people)]
        started = time.perf_counter()
        await valkey.ping()
        ping = time.perf_counter()
        verdict = await limiter.admit_turn(who, f"k{i}", 120.0)
        admitted = time.perf_counter()
        await limiter.end_turn(who, f"k{i}")
        ended = time.perf_counter()
        assert isinstance(verdict, Admitted)
        if i >= 200:
            out["ping"].append((ping - started) * 1000)
            out["admit"].append((admitted - ping) * 1000)
            out["end"].append((ended - admitted) * 1000)
    await valkey.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=3000)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="sb-limits-"))
    server = start_valkey(data, persist=False)
    try:
        results = asyncio.run(measure(f"redis://127.0.0.1:{server.port}/0", args.turns))
    finally:
        server.stop()
    print(f"\n### Limit checks per turn, {args.turns} turns (ms)\n")
    print("| step | p50 | p99 | mean |")
    print("|---|---|---|---|")
    total = [a + e for a, e in zip(results["admit"], results["end"], strict=True)]
    for name, values in (("one Valkey round trip (PING), for scale", results["ping"]),
                         ("admit_turn: before the turn (one script: budget, 2 windows, slot)",
                          results["admit"]),
                         ("end_turn: after the last frame (free the slot)", results["end"]),
                         ("limits per turn, total", total)):
        print(f"| {name} | {statistics.median(values):.3f} | {pct(values, 0.99):.3f} | "
              f"{statistics.fmean(values):.3f} |")


if __name__ == "__main__":
    main()
