"""Context against real NATS + Valkey: per-client skills in prompts, cache invalidation across
replicas, turn ordering per conversation, summarisation and usage accounting. The test plays
llm_stream with a scripted responder."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import nats
import pytest
import redis.asyncio as redis
from faststream import FastStream
from nats.js.api import ConsumerConfig

from switchboard_common.conversations import ConversationStore
from switchboard_common.directory import Client, Directory, publish_change
from switchboard_common.envelope import utcnow
from switchboard_common.model import ModelRequest, ModelResult
from switchboard_common.skills import Tier
from switchboard_common.turns import TurnRequest, Usage
from switchboard_context.main import build_app
from switchboard_context.settings import Settings

pytestmark = pytest.mark.connected


class Responder:
    """Plays llm_stream: answers every model request; `hold` keeps answers back."""

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.answer_summaries = True
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self, url: str, org: str) -> None:
        self.nc = await nats.connect(url)
        js = self.nc.jetstream()
        self.sub = await js.pull_subscribe(f"model.requested.{org}", durable="test-llm",
                                           stream="SB_MODEL", config=ConsumerConfig(ack_wait=30))
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        js = self.nc.jetstream()
        while True:
            try:
                msgs = await self.sub.fetch(1, timeout=1)
            except TimeoutError:
                continue
            for msg in msgs:
                req = ModelRequest.model_validate_json(msg.data)
                self.requests.append(req)
                self._changed.set()
                await msg.ack()
                await self.hold.wait()
                if req.purpose == "summary" and not self.answer_summaries:
                    continue
                text = ("SUMMARY of earlier turns" if req.purpose == "summary"
                        else f"answer to: {req.messages[-1].content}")
                result = ModelResult(
                    org_id=req.org_id, turn_id=req.turn_id, user_id=req.user_id,
                    client_id=req.client_id, conversation_id=req.conversation_id,
                    provider="test", model="claude-sonnet-4-5", text=text, purpose=req.purpose,
                    meta=req.meta, usage=Usage(input_tokens=100, output_tokens=10), last_seq=1)
                await js.publish(f"model.completed.{req.org_id}",
                                 result.model_dump_json().encode())

    async def wait_for(self, n: int, timeout: float = 10) -> list[ModelRequest]:
        async with asyncio.timeout(timeout):
            while len(self.requests) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.requests

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.nc.close()


def settings(nats_url: str, valkey_url: str, **kw: object) -> Settings:
    return Settings(nats_url=nats_url, valkey_url=valkey_url, memory_search=False,
                    **kw)  # type: ignore[arg-type]


@pytest.fixture
async def responder(nats_url: str, org: str) -> AsyncIterator[Responder]:
    r = Responder()
    yield r
    await r.stop()


async def start(app: FastStream) -> FastStream:
    await app.start()
    return app


def turn(org: str, turn_id: str, text: str, client: str = "sarah") -> TurnRequest:
    return TurnRequest(org_id=org, turn_id=turn_id, user_id="va1", client_id=client, text=text,
                       idempotency_key=turn_id, deadline_at=utcnow() + timedelta(seconds=60))


async def publish_turn(nc: nats.NATS, t: TurnRequest) -> None:
    await nc.jetstream().publish(f"turns.requested.{t.org_id}", t.model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": f"turn:{t.turn_id}"})


async def test_each_client_prompt_has_its_own_preferences_only(
        nats_url: str, valkey_url: str, org: str, responder: Responder) -> None:
    valkey = redis.Redis.from_url(valkey_url)
    directory = Directory(valkey)
    await directory.put_client(org, Client(id="sarah", name="Sarah Chen",
                                           assigned_users=["va1"]))
    await directory.put_client(org, Client(id="john", name="John Park", assigned_users=["va1"]))
    await directory.put_layer(org, Tier.CLIENT, "sarah",
                              {"preferences": {"meetings": "Sarah meets in the mornings only"}})
    await directory.put_layer(org, Tier.CLIENT, "john",
                              {"preferences": {"budget": "cc the CFO on budget approvals"}})
    app = await start(build_app(settings(nats_url, valkey_url)))
    await responder.start(nats_url, org)
    nc = await nats.connect(nats_url)
    try:
        await publish_turn(nc, turn(org, "t1", "Schedule the budget review", client="sarah"))
        await publish_turn(nc, turn(org, "t2", "Schedule the budget review", client="john"))
        reqs = {r.client_id: r for r in await responder.wait_for(2)}
        assert "mornings only" in reqs["sarah"].system and "Sarah Chen" in reqs["sarah"].system
        assert "CFO" not in reqs["sarah"].system + reqs["sarah"].context + reqs["sarah"].recall
        assert "cc the CFO" in reqs["john"].system and "John Park" in reqs["john"].system
        assert "mornings" not in reqs["john"].system + reqs["john"].context + reqs["john"].recall
    finally:
        await nc.close()
        await app.stop()
        await valkey.aclose()


async def test_skill_change_invalidates_the_cache_of_every_replica(
        nats_url: str, valkey_url: str, org: str) -> None:
    valkey = redis.Redis.from_url(valkey_url)
    directory = Directory(valkey)
    await directory.put_client(org, Client(id="sarah", name="Sarah"))
    await directory.put_layer(org, Tier.CLIENT, "sarah", {"email_tone": "formal"})
    replicas = [await start(build_app(settings(nats_url, valkey_url))) for _ in range(2)]
    nc = await nats.connect(nats_url)
    try:
        resolvers = [app.context.get("skills") for app in replicas]
        for resolver in resolvers:
            resolved, _ = await resolver.resolve(org, "va1", "sarah")
            assert resolved.skills.email_tone == "formal"
        await directory.put_layer(org, Tier.CLIENT, "sarah", {"email_tone": "warm"})
        await publish_change(directory, nc, org, Tier.CLIENT, "sarah")
        async with asyncio.timeout(5):
            for resolver in resolvers:
                while (await resolver.resolve(org, "va1", "sarah"))[0].skills.email_tone != "warm":
                    await asyncio.sleep(0.01)
        resolved, _ = await resolvers[1].resolve(org, "va1", "sarah")
        assert resolved.provenance["email_tone"] is Tier.CLIENT
    finally:
        await nc.close()
        for app in replicas:
            await app.stop()
        await valkey.aclose()


async def test_turns_of_one_conversation_run_one_at_a_time_in_order(
        nats_url: str, valkey_url: str, org: str, responder: Responder) -> None:
    # Two replicas share the work; the conversation still sees one turn at a time, in the
    # order sent. (Messages sent within the same millisecond to two replicas are ordered by
    # arrival at Valkey: see adapters/turn_queue.py. A person or a script awaiting each send
    # is far slower than that, modelled here by a short gap.)
    replicas = [await start(build_app(settings(nats_url, valkey_url))) for _ in range(2)]
    await responder.start(nats_url, org)
    responder.hold.clear()
    nc = await nats.connect(nats_url)
    try:
        for i in range(4):
            await publish_turn(nc, turn(org, f"t{i}", f"message {i}"))
            await asyncio.sleep(0.03)
        await responder.wait_for(1)
        await asyncio.sleep(0.5)
        assert len(responder.requests) == 1, "a second turn started before the first finished"
        responder.hold.set()
        reqs = await responder.wait_for(4)
        assert [r.messages[-1].content for r in reqs] == [f"message {i}" for i in range(4)]
        # Each turn saw every earlier turn's answer.
        last = reqs[3].messages
        assert [m.content for m in last if m.role == "user"][-2:] == ["message 2", "message 3"]
        assert last[-2].content == "answer to: message 2"
    finally:
        await nc.close()
        for app in replicas:
            await app.stop()


async def test_one_summary_is_asked_for_at_a_time(
        nats_url: str, valkey_url: str, org: str, responder: Responder) -> None:
    app = await start(build_app(settings(nats_url, valkey_url, history_token_budget=120)))
    responder.answer_summaries = False  # the first summary is still on its way
    await responder.start(nats_url, org)
    nc = await nats.connect(nats_url)
    try:
        filler = "the quarterly numbers look fine and the team is on track " * 3
        for i in range(5):
            await publish_turn(nc, turn(org, f"q{i}", f"{filler} ({i})"))
            async with asyncio.timeout(10):
                while sum(r.purpose == "answer" for r in responder.requests) < i + 1:
                    await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # a later summary request would have arrived by now
        assert sum(r.purpose == "summary" for r in responder.requests) == 1
    finally:
        await nc.close()
        await app.stop()


async def test_long_conversation_is_summarised_and_usage_is_counted_once(
        nats_url: str, valkey_url: str, org: str, responder: Responder) -> None:
    app = await start(build_app(settings(nats_url, valkey_url, history_token_budget=120)))
    await responder.start(nats_url, org)
    nc = await nats.connect(nats_url)
    store = ConversationStore(redis.Redis.from_url(valkey_url))
    try:
        filler = "the quarterly numbers look fine and the team is on track " * 3
        for i in range(4):
            await publish_turn(nc, turn(org, f"t{i}", f"{filler} ({i})"))
            await responder.wait_for(i + 1 + sum(r.purpose == "summary"
                                                 for r in responder.requests))
        async with asyncio.timeout(10):
            while await store.summary(org, "va1", "sarah", "main") is None:
                await asyncio.sleep(0.05)
        summary = await store.summary(org, "va1", "sarah", "main")
        assert summary is not None and summary.covers >= 2
        # Prompts read only what the summary does not cover. (Turns keep arriving: compare
        # within what both reads saw; messages are only ever appended.)
        past = await store.history(org, "va1", "sarah", "main")
        everything = await store.messages(org, "va1", "sarah", "main")
        assert past.summary is not None and past.offset == past.summary.covers >= 2
        assert past.recent == everything[past.offset:past.offset + len(past.recent)]
        assert any(r.purpose == "summary" for r in responder.requests)

        question = "What did we discuss earlier about the quarterly numbers and why?"
        await publish_turn(nc, turn(org, "t9", question))
        async with asyncio.timeout(10):
            while responder.requests[-1].messages[-1].content != question:
                await asyncio.sleep(0.05)
        final = responder.requests[-1]
        assert "SUMMARY of earlier turns" in final.recall
        all_messages = await store.messages(org, "va1", "sarah", "main")
        assert len(final.messages) < len(all_messages) + 1  # old turns replaced by the summary

        async with asyncio.timeout(10):
            while (await store.usage(org)).turns < 5:
                await asyncio.sleep(0.05)
        usage = await store.usage(org, client="sarah")
        assert usage.turns == 5 and usage.input_tokens == 500 and usage.output_tokens == 50
        assert usage.cost_usd == pytest.approx(5 * (100 * 3 + 10 * 15) / 1e6)
        records, total = await store.turns(org, "va1", "sarah", "main", 0, 2)
        assert total == 5 and records[0].turn_id == "t0" and len(records) == 2
    finally:
        await nc.close()
        await app.stop()
        await store.close()


async def test_an_outcome_delivered_many_times_at_once_is_noted_once(valkey_url: str,
                                                                      org: str) -> None:
    """The check and the push are one script: a result delivered to two consumers at the same
    moment (or redelivered while the first delivery is still noting it) is noted once."""
    store = ConversationStore(redis.Redis.from_url(valkey_url))
    try:
        outcome = "email_send (a1): executed. email_send done."
        await asyncio.gather(*(store.add_outcome(org, "va1", "sarah", "main", outcome)
                               for _ in range(20)))
        await store.add_outcome(org, "va1", "sarah", "main", "task_add (a2): executed.")
        assert (await store.history(org, "va1", "sarah", "main")).outcomes == [
            outcome, "task_add (a2): executed."]
    finally:
        await store.close()


async def test_an_action_decided_after_its_turn_is_noted_for_the_next_prompt(
        nats_url: str, valkey_url: str, org: str, responder: Responder) -> None:
    from switchboard_common.actions import ActionResult

    app = await start(build_app(settings(nats_url, valkey_url)))
    await responder.start(nats_url, org)
    nc = await nats.connect(nats_url)
    try:
        await publish_turn(nc, turn(org, "t1", "Email the CFO about the budget review"))
        await responder.wait_for(1)
        late = ActionResult(org_id=org, action_id="a1", turn_id="t1", user_id="va1",
                            client_id="sarah", tool="email_send", status="executed",
                            message="email_send done.")
        for _ in range(2):  # redelivered: still noted once
            await nc.jetstream().publish(f"actions.results.{org}", late.model_dump_json().encode(),
                                         headers={"Nats-Msg-Id": f"r{_}"})
        store = ConversationStore(redis.Redis.from_url(valkey_url))
        async with asyncio.timeout(10):
            while not (await store.history(org, "va1", "sarah", "main")).outcomes:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert (await store.history(org, "va1", "sarah", "main")).outcomes == [
            "email_send (a1): executed. email_send done."]
        await store.close()

        await publish_turn(nc, turn(org, "t2", "Did the mail go out?"))
        reqs = await responder.wait_for(2)
        assert "email_send (a1): executed." in reqs[1].recall
    finally:
        await nc.close()
        await app.stop()
