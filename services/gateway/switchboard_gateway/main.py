"""Composition root: settings -> broker + JetStream + Valkey (in the lifespan) -> routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import Scope

from switchboard_common import telemetry
from switchboard_common.action_store import ActionStore
from switchboard_common.bus import connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.connections import ConnectionStore
from switchboard_common.conversations import ConversationStore
from switchboard_common.directory import Directory
from switchboard_common.ingest_batches import IngestBatches
from switchboard_common.learning import LearningStore
from switchboard_common.permissions import ROLES
from switchboard_common.valkey import valkey_client
from switchboard_gateway.adapters.client_cache import ClientCache
from switchboard_gateway.adapters.events import TurnBus
from switchboard_gateway.adapters.limits import Limiter, SocketCounter
from switchboard_gateway.adapters.memory import MemoryBus
from switchboard_gateway.adapters.skills import SkillsBus
from switchboard_gateway.adapters.store import open_store
from switchboard_gateway.adapters.threads import ThreadTails
from switchboard_gateway.handlers.actions import ActionGate
from switchboard_gateway.handlers.auth import build_authenticator
from switchboard_gateway.handlers.clients import ClientGate
from switchboard_gateway.handlers.turns import TurnService
from switchboard_gateway.middleware import BodyBounds
from switchboard_gateway.routes import (
    actions,
    auth,
    clients,
    connections,
    conversations,
    errors,
    health,
    inbox,
    keys,
    limits,
    memory,
    page,
    proactive,
    skills,
    socket,
    templates,
    tools,
    turns,
    usage,
    users,
)
from switchboard_gateway.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    telemetry.setup("gateway", settings.log_level)
    secret_box = settings.secret_box()  # refuses to start without SECRETS_KEYS in production

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Directory and conversations share one lazily connecting client (it connects on first
        # use, after open_store below waited for Valkey or decided to start not-ready).
        # A bounded pool that makes a burst wait its turn for a connection (up to
        # valkey_pool_timeout_s) instead of failing with MaxConnectionsError; per-socket and
        # per-user caps keep one tenant from holding most of it.
        valkey = valkey_client(settings.valkey_url, settings.valkey_password,
                               max_connections=settings.valkey_max_connections,
                               pool_timeout_s=settings.valkey_pool_timeout_s)
        directory = Directory(valkey)
        client_cache = ClientCache(directory, settings.client_cache_s)

        async def drop_cached_clients() -> None:
            # While disconnected this replica may have missed skills.changed events.
            client_cache.clear()

        broker = make_broker(settings.nats_url, "gateway", settings.shutdown_grace_s,
                             drop_cached_clients, user=settings.nats_user,
                             password=settings.nats_password)
        nc = await connect_with_backoff(broker, settings.connect_timeout_s)
        await prepare_jetstream(broker, streams=ROLES["gateway"].streams(),
                                replicas=settings.stream_replicas)
        store = await open_store(settings.valkey_url, settings.idempotency_ttl_s,
                                 settings.connect_timeout_s, settings.valkey_password)
        bus = TurnBus(broker)
        app.state.bus, app.state.store = bus, store
        app.state.turns = TurnService(bus, store, settings)
        app.state.directory, app.state.conversations = directory, ConversationStore(valkey)
        app.state.connections = ConnectionStore(valkey, secret_box)
        app.state.limits = Limiter(valkey, settings.valkey_url, settings.limits,
                                   settings.limits_cache_s)
        app.state.sockets = SocketCounter()
        app.state.learning = LearningStore(valkey)
        await client_cache.listen(nc)
        app.state.skills = SkillsBus(nc, directory, settings.skills_resolve_timeout_s,
                                     drop_local=client_cache.invalidate)
        app.state.memory = MemoryBus(broker, settings.memory_timeout_s,
                                     settings.memory_forget_timeout_s, IngestBatches(valkey),
                                     ThreadTails(valkey))
        app.state.gate = ClientGate(directory, client_cache, app.state.skills,
                                    bool(settings.auto_provision_clients))
        app.state.actions = ActionGate(nc, ActionStore(valkey), directory,
                                       settings.decide_timeout_s)
        app.state.auth = build_authenticator(settings, valkey, directory, nc)
        await app.state.auth.start()
        if settings.dev_credential:
            log.warning("DEV CREDENTIAL ENABLED: anyone who can reach %s:%d may act as any "
                        "existing user by naming them (X-Org/X-User, ?org=&user=). "
                        "Development only.", settings.host, settings.port)
        log.info("gateway ready: web app http://%s:%d/  WebSocket ws://%s:%d/ws",
                 settings.host, settings.port, settings.host, settings.port)
        telemetry.settle_memory()
        try:
            yield
        finally:
            # Sockets are closed by now (uvicorn closes them before the lifespan ends);
            # drain delivers what is in flight and unsubscribes cleanly.
            await broker.stop()
            await store.close()
            await app.state.auth.close()
            await valkey.aclose()

    # FastAPI's own server span per request stays for HTTP; a WebSocket gets none: its span
    # would live as long as the socket (hours, exported only at close), wrap every frame
    # sent and received, and hold ~10 KB per idle socket. Each turn on a socket opens its
    # own root span instead (`handlers.turns`).
    app = FastAPI(title="Switchboard gateway", version="0.1.0", lifespan=lifespan,
                  telemetry={"exclude": _websocket},
                  description="WebSocket chat protocol at /ws (see docs/protocol.md), the "
                              "REST API under /v1 (see docs/api.md), health probes, and the "
                              "web app at /.")
    app.state.settings = settings
    errors.install(app)
    # Inside CORS, so a 413/422 from the bounds still carries the CORS headers.
    app.add_middleware(BodyBounds, max_body_bytes=settings.max_body_bytes,
                       max_depth=settings.max_json_depth)
    # CORS for REST from the same allow-list as the WebSocket's Origin check. Bearer tokens,
    # never cookies: credentials mode stays off, so `*` cannot expose a session.
    app.add_middleware(CORSMiddleware, allow_origins=settings.allowed_origins,
                       allow_methods=["*"], allow_headers=["*"], max_age=600)
    for module in (health, auth, keys, turns, users, clients, connections, templates, skills,
                   conversations, usage, limits, memory, actions, inbox, proactive, tools, socket,
                   page):
        app.include_router(module.router)
    page.mount_assets(app, settings.web_dir)
    return app


def _websocket(scope: Scope) -> bool:
    return bool(scope["type"] == "websocket")
