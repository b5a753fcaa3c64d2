"""The turn queue's one-round-trip start against real Valkey: the conversation read rides
behind the queue script, and a server that lost its script cache still starts the turn."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from switchboard_common.conversations import ConversationStore, TurnRecord
from switchboard_common.turns import Usage
from switchboard_context.adapters.turn_queue import TurnQueue

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
