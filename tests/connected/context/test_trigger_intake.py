"""The trigger intake against real Valkey, with failures injected where a crash would hit:
claiming an event and queueing its background turn happen in one script (never a claim
without a turn), and a delivery that died before its ack is taken over by the redelivery of
the same message, while a re-sent copy of the event does nothing (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis
from faststream.nats import NatsBroker

from switchboard_common.conversations import ConversationStore, conversation_key
from switchboard_common.directory import Client, Directory
from switchboard_common.memory import IngestEvent
from switchboard_common.skills import Tier
from switchboard_common.triggers import ACTIVITY_CONVERSATION, background_turn_id
from switchboard_context.adapters.pending import PendingTurns
from switchboard_context.adapters.skills_cache import SkillResolver
from switchboard_context.adapters.trigger_gate import TriggerGate
from switchboard_context.adapters.turn_queue import TAKEN, TurnQueue
from switchboard_context.flow import TurnFlow
from switchboard_context.settings import Settings
from switchboard_context.triggers import TriggerIntake

pytestmark = pytest.mark.connected


class Crash(Exception):
    """Stands for the context process dying at that point."""


async def intake_for(valkey: redis.Redis, org: str) -> tuple[TriggerIntake, list[str]]:
    directory = Directory(valkey)
    await directory.put_client(org, Client(id="sarah", name="Sarah", assigned_users=["va1"]))
    await directory.put_layer(org, Tier.CLIENT, "sarah", {"triggers": [
        {"name": "moves", "keywords": ["move"], "instruction": "propose the change"}]})
    flow = TurnFlow(settings=Settings(), broker=NatsBroker(),
                    conversations=ConversationStore(valkey),
                    pending=PendingTurns(valkey, 3600), queue=TurnQueue(valkey, 600),
                    skills=SkillResolver(directory))
    started: list[str] = []

    async def start(turn_id: str, accepted: Any = None) -> None:
        started.append(turn_id)

    flow.start = start  # type: ignore[method-assign]
    return TriggerIntake(flow, directory, TriggerGate(valkey, 100, 100), 60.0), started


def mail(org: str) -> IngestEvent:
    return IngestEvent(org_id=org, event_id="mail-1", client_id="sarah", source="email",
                       title="Board prep", text="Can we move board prep to Friday?",
                       metadata={"kind": "received", "from": "priya@acme.com"})


async def test_a_delivery_that_dies_after_queueing_is_taken_over_by_its_redelivery(
        valkey: redis.Redis, org: str) -> None:
    intake, started = await intake_for(valkey, org)
    event = mail(org)
    real_start = intake.flow.start

    async def dies(turn_id: str, accepted: Any = None) -> None:
        raise Crash

    intake.flow.start = dies  # type: ignore[method-assign]
    with pytest.raises(Crash):  # queued, then died before starting it (and before the ack)
        await intake.handle(event, order=5)
    turn_id = background_turn_id(org, "sarah", "mail-1")
    base = f"{conversation_key(org, 'va1', 'sarah', ACTIVITY_CONVERSATION)}:bg:{turn_id}"
    # The claim and the queued turn came together.
    assert await valkey.get(f"trg:claim:{org}:sarah:mail-1") == b"5"
    assert await valkey.get(f"ctxq:{base}:active") == turn_id.encode()

    intake.flow.start = real_start  # type: ignore[method-assign]
    assert await intake.handle(event, order=9) is None  # a re-sent copy: nothing
    assert started == []
    # ...also when it raced past the early check: the script refuses another claimant.
    assert await intake.flow.queue.enqueue(
        base, turn_id, 9, record=(PendingTurns.key(turn_id), b"-", 60),
        once=TriggerGate.once(org, "sarah", "mail-1", 9)) == TAKEN
    assert await intake.handle(event, order=5) is None  # the redelivery takes over
    assert started == [turn_id]

    # Once the turn ran (its record is forgotten with the queue slot), even the claiming
    # message's redelivery does nothing.
    await intake.flow.queue.finish(base, turn_id, forget=PendingTurns.key(turn_id))
    assert await intake.handle(event, order=5) is None
    assert started == [turn_id]
    assert await valkey.get(f"ctxq:{base}:active") is None


async def test_a_failure_before_the_queueing_script_leaves_no_claim(
        valkey: redis.Redis, org: str) -> None:
    intake, started = await intake_for(valkey, org)
    event = mail(org)
    real_enqueue = intake.flow.queue.enqueue

    async def dies(*args: Any, **kw: Any) -> str | None:
        raise Crash

    intake.flow.queue.enqueue = dies  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await intake.handle(event, order=5)
    assert await valkey.get(f"trg:claim:{org}:sarah:mail-1") is None
    intake.flow.queue.enqueue = real_enqueue  # type: ignore[method-assign]
    # Any later delivery (here a copy) starts the turn: the event was not lost.
    assert await intake.handle(event, order=9) is None
    assert len(started) == 1
    assert await valkey.get(f"trg:claim:{org}:sarah:mail-1") == b"9"


async def test_background_turns_of_one_client_do_not_wait_for_each_other(
        valkey: redis.Redis, org: str) -> None:
    intake, started = await intake_for(valkey, org)
    first, second = mail(org), mail(org).model_copy(update={"event_id": "mail-2"})
    assert await intake.handle(first, order=5) is None
    assert await intake.handle(second, order=6) is None
    # Both start at once (each has its own queue slot), though the first has not finished;
    # both are stored in the one activity conversation when they do.
    assert started == [background_turn_id(org, "sarah", "mail-1"),
                       background_turn_id(org, "sarah", "mail-2")]
