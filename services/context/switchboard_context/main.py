"""Composition root: settings -> Valkey + broker -> JetStream consumers -> flow -> handlers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import FastStream
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from nats.js.api import DeliverPolicy

from switchboard_common.action_store import ActionStore
from switchboard_common.actions import ActionProposed
from switchboard_common.bus import connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.conversations import ConversationStore
from switchboard_common.dead_letter import watch_dead_letters
from switchboard_common.directory import Directory
from switchboard_common.lifecycle import run_periodically, settle_after_startup
from switchboard_common.memory import SearchRequest
from switchboard_common.model import ModelRequest
from switchboard_common.ops import serve_ops
from switchboard_common.permissions import ROLES
from switchboard_common.pull_worker import PullWorker, docs_broker
from switchboard_common.streams import ACTIONS, INGEST, RESULTS, TURNS, ConsumerSpec
from switchboard_common.telemetry import setup as setup_telemetry
from switchboard_common.turns import StreamEvent, TurnCompleted
from switchboard_common.valkey import connect_valkey
from switchboard_context.adapters.loop_state import LoopState
from switchboard_context.adapters.memory import MemorySearch, SearchBudget
from switchboard_context.adapters.pending import PendingTurns
from switchboard_context.adapters.skills_cache import SkillResolver
from switchboard_context.adapters.trigger_gate import TriggerGate
from switchboard_context.adapters.turn_queue import TurnQueue
from switchboard_context.flow import TurnFlow
from switchboard_context.handlers import actions, events, memory, results, skills, turns
from switchboard_context.settings import Settings
from switchboard_context.tool_loop import ToolLoop
from switchboard_context.triggers import TriggerIntake

log = logging.getLogger(__name__)


def consumers(settings: Settings) -> tuple[ConsumerSpec, ...]:
    return (
        ConsumerSpec(TURNS, turns.CONSUMER, "turns.requested.>",
                     ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),
        ConsumerSpec(RESULTS, results.CONSUMER, "model.completed.>",
                     ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),
        ConsumerSpec(ACTIONS, actions.CONSUMER, "actions.results.>",
                     ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),
        *((ConsumerSpec(INGEST, events.CONSUMER, "events.ingest.>",
                        ack_wait_s=settings.ack_wait_s, max_deliver=settings.trigger_max_deliver,
                        deliver_policy=DeliverPolicy.NEW),) if settings.triggers else ()),
    )


def build_broker(settings: Settings, on_reconnect: Callable[[], Awaitable[None]] | None = None
                 ) -> NatsBroker:
    broker = make_broker(settings.nats_url, "context", settings.shutdown_grace_s,
                         reconnected_cb=on_reconnect, user=settings.nats_user,
                         password=settings.nats_password)
    for module in (skills, memory, actions):
        broker.include_router(module.router())
    if settings.triggers:
        broker.include_router(events.router())
    # What context publishes (for the AsyncAPI document; publishing goes through bus helpers).
    broker.publisher("model.requested.{org}", schema=ModelRequest,
                     title="context/model.requested",
                     description="A model call for a turn (JetStream SB_MODEL, Nats-Msg-Id "
                                 "model:<turn>:<iteration>), or a background summary.")
    broker.publisher("turns.completed.{org}", schema=TurnCompleted,
                     title="context/turns.completed",
                     description="A finished turn, appended to its conversation (SB_HISTORY).")
    broker.publisher("actions.proposed.{org}", schema=ActionProposed,
                     title="context/actions.proposed",
                     description="A tool call the model made, with the client's autonomy "
                                 "policy (JetStream SB_ACTIONS, Nats-Msg-Id action:<id>).")
    broker.publisher("memory.search.{org}", schema=SearchRequest,
                     title="context/memory.search",
                     description="Request/reply (250 ms budget): retrieval for full prompts.")
    broker.publisher("turns.events.{org}.{turn}", schema=StreamEvent,
                     title="context/turns.events",
                     description="The turn's terminal client event: turn_completed or error.")
    return broker


def build_app(settings: Settings | None = None) -> FastStream:
    settings = settings or Settings()
    setup_telemetry("context", settings.log_level)

    async def drop_cached_skills() -> None:
        # While disconnected this replica may have missed skills.changed events.
        resolver: SkillResolver | None = app.context.get("skills")
        if resolver is not None:
            resolver.clear()

    broker = build_broker(settings, drop_cached_skills)
    # turns.requested and model.completed are consumed by PullWorkers (see connect).
    docs = docs_broker(broker)
    turns.document(docs)
    results.document(docs)
    app = FastStream(broker, specification=AsyncAPI(broker, docs, title="Switchboard context"))
    workers: list[PullWorker[Any]] = []
    readiness = serve_ops(app, broker, settings.http_host, settings.http_port,
                          consumers(settings))

    @app.on_startup
    async def connect() -> None:
        valkey = await connect_valkey(settings.valkey_url, settings.connect_timeout_s,
                                      settings.valkey_password)
        readiness.add("valkey", valkey.ping)
        nc = await connect_with_backoff(broker, settings.connect_timeout_s)
        resolver = SkillResolver(Directory(valkey), settings.skills_cache_ttl_s)
        conversations = ConversationStore(valkey)
        flow = TurnFlow(
            settings=settings, broker=broker, conversations=conversations,
            pending=PendingTurns(valkey, settings.pending_ttl_s),
            queue=TurnQueue(valkey, settings.turn_active_ttl_s), skills=resolver,
            audit=ActionStore(valkey),
            memory=(MemorySearch(nc, SearchBudget(
                floor_s=settings.memory_timeout_floor_s,
                ceiling_s=settings.memory_timeout_ceiling_s,
                factor=settings.memory_timeout_factor), settings.memory_k)
                    if settings.memory_search else None),
            loop=(ToolLoop(broker, LoopState(valkey, settings.pending_ttl_s),
                           settings.tool_max_iterations, settings.tool_token_budget)
                  if settings.tools else None))
        intake = TriggerIntake(flow, Directory(valkey), TriggerGate(
            valkey, settings.trigger_per_client_per_min, settings.trigger_per_org_per_min),
            settings.background_deadline_s)
        for name, value in (("flow", flow), ("skills", resolver),
                            ("conversations", conversations), ("triggers", intake)):
            app.context.set_global(name, value)
        specs = {spec.name: spec for spec in consumers(settings)}
        await prepare_jetstream(broker, tuple(specs.values()), ROLES["context"].streams(),
                                replicas=settings.stream_replicas)
        await watch_dead_letters(nc, tuple(specs.values()))
        workers.extend((turns.worker(nc, specs[turns.CONSUMER], flow),
                        results.worker(nc, specs[results.CONSUMER], flow)))
        for worker in workers:
            await worker.start()

    async def sweep() -> None:
        flow: TurnFlow = app.context.get("flow")
        await flow.sweep()

    run_periodically(app, settings.sweep_interval_s, sweep, "turn queue sweep")
    settle_after_startup(app)

    @app.on_shutdown
    async def drain() -> None:
        for worker in workers:
            await worker.stop(settings.shutdown_grace_s)
        flow: TurnFlow | None = app.context.get("flow")
        if flow is not None:
            await flow.drain(settings.shutdown_grace_s)

    @app.after_shutdown
    async def close() -> None:
        conversations: ConversationStore | None = app.context.get("conversations")
        if conversations is not None:
            await conversations.close()

    return app
