"""Skill resolution latency: 5 users, 10 templates, 50 clients in a real Valkey.

Measures (a) warm resolutions (in-process cache hits), (b) the first resolution after a change
(the org's cache dropped, as a skills.changed event does: two Valkey round trips plus the merge
and validation), and (c) the time from publishing skills.changed on NATS until a context
replica's cache no longer serves the old value. Prints p50/p99 in a table.
Usage: python bench/skills_resolution.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
import redis.asyncio as redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchboard_cli.embedded import start_nats, start_valkey  # noqa: E402
from switchboard_common.directory import Client, Directory, Template, publish_change  # noqa: E402
from switchboard_common.skills import Tier  # noqa: E402
from switchboard_context.main import build_app  # noqa: E402
from switchboard_context.settings import Settings  # noqa: E402

ORG = "bench"
USERS = [f"u{i}" for i in range(5)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def seed(directory: Directory) -> list[str]:
    for i, user in enumerate(USERS):
        await directory.put_layer(ORG, Tier.USER, user, {
            "email_tone": ["warm", "formal", "brief", "friendly", "direct"][i],
            "preferences": {"signature": f"sign as assistant {i}"}})
    for t in range(10):
        await directory.put_template(ORG, Template(id=f"t{t}", name=f"template {t}", skills={
            "autonomy": {"mode": ["suggest", "assist", "automate"][t % 3],
                         "actions": {"email_send": {"auto_execute": 0.95,
                                                    "require_approval": 0.7}}},
            "enabled_tools": ["calendar_create", "email_draft", "task_add"][: 1 + t % 3],
            "preferences": {"meetings": f"template {t} meeting rule"}}))
    clients = []
    for c in range(50):
        cid = f"c{c}"
        clients.append(cid)
        await directory.put_client(ORG, Client(id=cid, name=f"Client {c}", template_id=f"t{c % 10}",
                                               assigned_users=USERS))
        await directory.put_layer(ORG, Tier.CLIENT, cid, {
            "preferences": {"budget": f"client {c}: cc the CFO on budget items"},
            "models": {"complex": "claude-sonnet-4-5"}})
    return clients


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="sb-skills-"))
    nats_server, valkey_server = start_nats(data), start_valkey(data, persist=False)
    try:
        valkey = redis.Redis.from_url(valkey_server.url)
        directory = Directory(valkey)
        clients = await seed(directory)
        app = build_app(Settings(nats_url=nats_server.url, valkey_url=valkey_server.url,
                                 memory_search=False, log_level="WARNING"))
        await app.start()
        resolver = app.context.get("skills")
        pairs = [(u, c) for u in USERS for c in clients]
        for u, c in pairs:  # warm every (user, client)
            await resolver.resolve(ORG, u, c)

        warm, cold = [], []
        for _ in range(args.rounds):
            u, c = random.choice(pairs)
            t = time.perf_counter()
            await resolver.resolve(ORG, u, c)
            warm.append((time.perf_counter() - t) * 1000)
        for _ in range(max(200, args.rounds // 10)):
            u, c = random.choice(pairs)
            resolver.invalidate(ORG)
            t = time.perf_counter()
            await resolver.resolve(ORG, u, c)
            cold.append((time.perf_counter() - t) * 1000)

        nc = await nats.connect(nats_server.url)
        propagation = []
        for i in range(100):
            c = random.choice(clients)
            await resolver.resolve(ORG, "u0", c)
            await directory.put_layer(ORG, Tier.CLIENT, c, {"email_tone": f"tone {i}"})
            t = time.perf_counter()
            await publish_change(directory, nc, ORG, Tier.CLIENT, c)
            while (await resolver.resolve(ORG, "u0", c))[0].skills.email_tone != f"tone {i}":
                await asyncio.sleep(0)
            propagation.append((time.perf_counter() - t) * 1000)
        await nc.close()
        await app.stop()
        await valkey.aclose()
    finally:
        nats_server.stop()
        valkey_server.stop()

    print("\n### Skill resolution (5 users, 10 templates, 50 clients), ms\n")
    print("| case | n | p50 | p99 | target |")
    print("|---|---|---|---|---|")
    print(f"| warm (cache hit) | {len(warm)} | {statistics.median(warm):.4f} | "
          f"{pct(warm, 0.99):.4f} | p99 <= 1 |")
    print(f"| first after a change (cache dropped) | {len(cold)} | "
          f"{statistics.median(cold):.3f} | {pct(cold, 0.99):.3f} | <= 5 |")
    print(f"| change published -> replica serves new value | {len(propagation)} | "
          f"{statistics.median(propagation):.3f} | {pct(propagation, 0.99):.3f} | |")


if __name__ == "__main__":
    asyncio.run(main())
