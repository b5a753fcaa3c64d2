"""Trigger rule matching: time to pick the first matching rule out of 100 for one event
(pure code, no I/O: what context does for every ingested event before any model call).
Target <= 0.1 ms. Two rule sets, neither of which matches (so no early stop), in ~1 KB mails:
- `typical`: every rule passes source, kind and sender and fails on its keywords, whose first
  words do occur in the mail (the index rules them out by their other words);
- `adversarial`: every rule passes source, kind and sender, and all the words of its keyword
  phrase occur in the mail but never side by side, so no index can rule a rule out: all 100
  are checked in full, as by a plain scan.
The plain scan (every rule in order) is timed in the same run, on the same events.
Usage: python bench/trigger_match.py [--events 20000] [--rules 100]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_common.memory import IngestEvent  # noqa: E402
from switchboard_common.triggers import (  # noqa: E402
    EventFacts,
    TriggerRule,
    first_match,
    rule_matches,
)

WORDS = ("board", "invoice", "contract", "meeting", "reschedule", "urgent", "offer", "travel",
         "budget", "hiring", "launch", "review", "deadline", "renewal", "press")


def rules(n: int, rng: random.Random, adversarial: bool = False) -> list[TriggerRule]:
    if adversarial:
        # WORDS[j + 2] never follows WORDS[j] in the adversarial mail (WORDS in a cycle).
        return [TriggerRule(name=f"rule-{i}", sources=["email", "calendar"], kinds=["received"],
                            senders=["@client0.example", f"boss{i}@corp.example"],
                            keywords=[f"{WORDS[i % len(WORDS)]} "
                                      f"{WORDS[(i + 2) % len(WORDS)]}"],
                            instruction="propose what to do")
                for i in range(n)]
    return [TriggerRule(name=f"rule-{i}", sources=["email", "calendar"], kinds=["received"],
                        senders=["@client0.example", f"boss{i}@corp.example"],
                        keywords=[f"{rng.choice(WORDS)}-{i}", f"nomatch{i}"],
                        instruction="propose what to do")
            for i in range(n)]


def events(n: int, rng: random.Random, adversarial: bool = False) -> list[IngestEvent]:
    body = (" ".join(WORDS * 10) if adversarial  # ~1 KB, each word always before the same one
            else " ".join(rng.choice(WORDS) for _ in range(150)))  # ~1 KB of mail text
    return [IngestEvent(org_id="o", event_id=f"e{i}", client_id="c", source="email",
                        title="Re: meeting", text=body,
                        metadata={"kind": "received", "from": f"Someone <p{i}@client0.example>"})
            for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rules", type=int, default=100)
    args = parser.parse_args()
    print("| rules | case | events | indexed p50 ms | indexed p99 ms | plain scan p50 ms "
          "| plain scan p99 ms |\n|---|---|---|---|---|---|---|")
    for case in ("typical", "adversarial"):
        rng = random.Random(7)
        ruleset = rules(args.rules, rng, adversarial=case == "adversarial")
        batch = events(args.events, rng, adversarial=case == "adversarial")
        indexed = timed(batch, partial(first_match, ruleset))
        plain = timed(batch, partial(plain_scan, ruleset))
        print(f"| {args.rules} | {case} | {args.events} | {indexed[0]:.4f} | {indexed[1]:.4f} "
              f"| {plain[0]:.4f} | {plain[1]:.4f} |")


def plain_scan(ruleset: list[TriggerRule], event: IngestEvent) -> TriggerRule | None:
    """The reference: every rule in declared order, what the index must agree with."""
    facts = EventFacts(event)
    return next((r for r in ruleset if rule_matches(r, facts)), None)


def timed(batch: list[IngestEvent], match: Callable[[IngestEvent], TriggerRule | None]
          ) -> tuple[float, float]:
    samples = []
    for ev in batch:
        t0 = time.perf_counter()
        assert match(ev) is None
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]

if __name__ == "__main__":
    main()
