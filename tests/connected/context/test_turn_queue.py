"""The turn queue's one-round-trip start against real Valkey: the conversation read rides
behind the queue script, and a server that lost its script cache still starts the turn."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from switchboard_common.conversations import (
    ConversationStore,
    TurnRecord,
    conversation_key,
    done_key,
)
from switchboard_common.turns import Usage
from switchboard_context.adapters.turn_queue import TAKEN, TurnQueue

pytestmark = pytest.mark.connected


async def test_the_read_behind_the_queue_sees_the_turn_that_finished(
        valkey: redis.Redis) -> None:
    org, base = "o" + uuid.uuid4().hex[:8], uuid.uuid4().hex
    queue, store = TurnQueue(valkey, 60), ConversationStore(valkey)
    read = store.history_command(org, "va1", "sarah", "main")
    await store.history(org, "va1", "sarah", "main")  # the server knows the script
    assert await queue.enqueue(base, "t1", 1) == "t1"
    started, reply = await queue.enqueue_then(base, "t2", 2, ("rec:t2", b"{}", 60), read)
    assert started is None and store.parse_history(reply).recent == []  # t1 still runs
    await store.append_turn(org, "va1", "sarah", "main", TurnRecord(
        turn_id="t1", user_text="first", assistant_text="one", model="m", provider="p",
        usage=Usage(), cost_usd=0.0))
    assert await queue.finish(base, "t1") == "t2"  # t2 starts by the finish, not here
    await queue.finish(base, "t2")
    started, reply = await queue.enqueue_then(base, "t3", 3, ("rec:t3", b"{}", 60), read)
    assert started == "t3"
    assert [m.content for m in store.parse_history(reply).recent] == ["first", "one"]


async def test_a_server_without_its_scripts_still_starts_the_turn(valkey: redis.Redis) -> None:
    org, base = "o" + uuid.uuid4().hex[:8], uuid.uuid4().hex
    queue, store = TurnQueue(valkey, 60), ConversationStore(valkey)
    await valkey.script_flush()  # what a restarted server without persistence of scripts has
    started, reply = await queue.enqueue_then(
        base, "t1", 1, ("rec:t1", b"{}", 60), store.history_command(org, "va1", "sarah", "main"))
    assert (started, reply) == ("t1", None)  # started; the history is read the usual way
    assert (await store.history(org, "va1", "sarah", "main")).recent == []
    started, reply = await queue.enqueue_then(  # the same turn again (a redelivery)
        base, "t1", 1, ("rec:t1", b"{}", 60), store.history_command(org, "va1", "sarah", "main"))
    assert started == "t1" and store.parse_history(reply).recent == []  # scripts loaded again


async def test_a_finished_turn_delivered_again_is_not_queued_again(valkey: redis.Redis) -> None:
    """Its request may come back after the turn finished (JetStream redelivers it, or a
    re-sent key's request arrives past the duplicate window): it must not run twice."""
    org = "o" + uuid.uuid4().hex[:8]
    base = conversation_key(org, "va1", "sarah", "main")
    queue, store = TurnQueue(valkey, 60), ConversationStore(valkey)
    assert await queue.enqueue(base, "t1", 1, ("rec:t1", b"{}", 60)) == "t1"
    await store.append_turn(org, "va1", "sarah", "main", TurnRecord(
        turn_id="t1", user_text="first", assistant_text="one", model="m", provider="p",
        usage=Usage(), cost_usd=0.0))
    assert await queue.finish(base, "t1", forget="rec:t1") is None
    assert await queue.enqueue(base, "t1", 1, ("rec:t1", b"{}", 60)) == TAKEN
    started, _ = await queue.enqueue_then(
        base, "t1", 1, ("rec:t1", b"{}", 60), store.history_command(org, "va1", "sarah", "main"))
    assert started == TAKEN
    assert await valkey.get("rec:t1") is None  # no pending record left behind
    assert await valkey.get(f"ctxq:{base}:active") is None
    # A background turn queues in a slot of its own; its conversation's set still counts.
    assert await queue.enqueue(f"{base}:bg:t1", "t1", 1, ("rec:t1", b"{}", 60),
                               done=done_key(org, "va1", "sarah", "main")) == TAKEN
    assert await queue.enqueue(base, "t2", 2, ("rec:t2", b"{}", 60)) == "t2"
