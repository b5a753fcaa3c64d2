"""Composition root: settings -> broker -> JetStream consumers -> handlers."""

from __future__ import annotations

from faststream import FastStream
from faststream.specification import AsyncAPI

from switchboard_action_executor.handlers import actions
from switchboard_action_executor.settings import Settings
from switchboard_common.bus import connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.dead_letter import watch_dead_letters
from switchboard_common.streams import ACTIONS, ConsumerSpec
from switchboard_common.telemetry import setup as setup_telemetry


def consumers(settings: Settings) -> tuple[ConsumerSpec, ...]:
    return (ConsumerSpec(ACTIONS, actions.CONSUMER, "actions.proposed.>",
                         ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),)


def build_app(settings: Settings | None = None) -> FastStream:
    settings = settings or Settings()
    setup_telemetry("action_executor", settings.log_level)
    broker = make_broker(settings.nats_url, "action_executor", settings.shutdown_grace_s)
    broker.include_router(actions.router)
    app = FastStream(broker, specification=AsyncAPI(title="Switchboard action_executor"))

    @app.on_startup
    async def connect() -> None:
        await connect_with_backoff(broker, settings.connect_timeout_s)
        await prepare_jetstream(broker, consumers(settings))
        await watch_dead_letters(broker.connection, consumers(settings))

    return app
