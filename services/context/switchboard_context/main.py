"""Composition root: settings -> Valkey + broker -> JetStream consumers -> handlers."""

from __future__ import annotations

from faststream import FastStream
from faststream.specification import AsyncAPI

from switchboard_common import telemetry
from switchboard_common.bus import connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.dead_letter import watch_dead_letters
from switchboard_common.streams import RESULTS, TURNS, ConsumerSpec
from switchboard_common.valkey import connect_valkey
from switchboard_context.adapters.conversations import ConversationStore
from switchboard_context.handlers import results, turns
from switchboard_context.settings import Settings


def consumers(settings: Settings) -> tuple[ConsumerSpec, ...]:
    return (
        ConsumerSpec(TURNS, turns.CONSUMER, "turns.requested.>",
                     ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),
        ConsumerSpec(RESULTS, results.CONSUMER, "model.completed.>",
                     ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),
    )


def build_app(settings: Settings | None = None) -> FastStream:
    settings = settings or Settings()
    telemetry.setup("context", settings.log_level)
    broker = make_broker(settings.nats_url, "context", settings.shutdown_grace_s)
    broker.include_router(turns.router)
    broker.include_router(results.router)
    app = FastStream(broker, specification=AsyncAPI(title="Switchboard context"))

    @app.on_startup
    async def connect() -> None:
        valkey = await connect_valkey(settings.valkey_url, settings.connect_timeout_s)
        app.context.set_global("store", ConversationStore(valkey, settings.pending_ttl_s))
        app.context.set_global("settings", settings)
        await connect_with_backoff(broker, settings.connect_timeout_s)
        await prepare_jetstream(broker, consumers(settings))
        await watch_dead_letters(broker.connection, consumers(settings))

    @app.after_shutdown
    async def close() -> None:
        store: ConversationStore | None = app.context.get("store")
        if store is not None:
            await store.close()

    return app
