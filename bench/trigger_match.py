"""Trigger rule matching: time to pick the first matching rule out of 100 for one event
(pure code, no I/O: what context does for every ingested event before any model call).
The worst case is measured: every rule passes source, kind and sender and fails on keywords
(two each, scanned in ~1 KB of text), so all rules are checked in full. Target <= 0.1 ms.
Usage: python bench/trigger_match.py [--events 20000] [--rules 100]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_common.memory import IngestEvent  # noqa: E402
from switchboard_common.triggers import TriggerRule, first_match  # noqa: E402

WORDS = ("board", "invoice", "contract", "meeting", "reschedule", "urgent", "offer", "travel",
         "budget", "hiring", "launch", "review", "deadline", "renewal", "press")


def rules(n: int, rng: random.Random) -> list[TriggerRule]:
    # Worst case: every rule passes source, kind and sender, so each one scans the whole
    # text for its keywords, and none of them is there.
    return [TriggerRule(name=f"rule-{i}", sources=["email", "calendar"], kinds=["received"],
                        senders=["@client0.example", f"boss{i}@corp.example"],
                        keywords=[f"{rng.choice(WORDS)}-{i}", f"nomatch{i}"],
                        instruction="propose what to do")
            for i in range(n)]


def events(n: int, rng: random.Random) -> list[IngestEvent]:
    body = " ".join(rng.choice(WORDS) for _ in range(150))  # ~1 KB of mail text
    return [IngestEvent(org_id="o", event_id=f"e{i}", client_id="c", source="email",
                        title="Re: meeting", text=body,
                        metadata={"kind": "received", "from": f"Someone <p{i}@client0.example>"})
            for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rules", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(7)
    ruleset, batch = rules(args.rules, rng), events(args.events, rng)
    samples = []
    for ev in batch:
        t0 = time.perf_counter()
        assert first_match(ruleset, ev) is None
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99)]
    print(f"| rules | events | p50 ms/event | p99 ms/event |\n|---|---|---|---|\n"
          f"| {args.rules} | {args.events} | {p50:.4f} | {p99:.4f} |")


if __name__ == "__main__":
    main()
