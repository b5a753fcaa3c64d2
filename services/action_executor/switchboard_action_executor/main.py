"""Composition root: settings -> Valkey + broker -> tool backends -> registry -> service ->
JetStream consumer, request/reply handler and the expiry sweeper."""

from __future__ import annotations

import logging

from faststream import FastStream
from faststream.specification import AsyncAPI

from switchboard_action_executor.adapters.caldav import CalDav
from switchboard_action_executor.adapters.ratelimit import RateLimiter
from switchboard_action_executor.adapters.smtp import Mailer
from switchboard_action_executor.handlers import actions
from switchboard_action_executor.service import ActionService
from switchboard_action_executor.settings import Settings
from switchboard_action_executor.tools.builtin import Backends, build_registry
from switchboard_common.action_store import ActionStore
from switchboard_common.actions import ActionPending, ActionResult, ActionResultFrame
from switchboard_common.bus import connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.connections import ConnectionStore
from switchboard_common.dead_letter import watch_dead_letters
from switchboard_common.learning import LearningStore
from switchboard_common.lifecycle import run_periodically, settle_after_startup
from switchboard_common.ops import serve_ops
from switchboard_common.permissions import ROLES
from switchboard_common.streams import ACTIONS, ConsumerSpec
from switchboard_common.telemetry import setup as setup_telemetry
from switchboard_common.valkey import connect_valkey

log = logging.getLogger(__name__)


def consumers(settings: Settings) -> tuple[ConsumerSpec, ...]:
    return (ConsumerSpec(ACTIONS, actions.CONSUMER, "actions.proposed.>",
                         ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),)


def build_backends(settings: Settings) -> tuple[CalDav, Mailer]:
    auth = None
    if settings.caldav_username and settings.caldav_password:
        auth = (settings.caldav_username, settings.caldav_password.get_secret_value())
    calendar = CalDav(settings.caldav_url, settings.caldav_home, auth)
    mailer = Mailer(settings.smtp_host, settings.smtp_port, settings.mail_from,
                    username=settings.smtp_username,
                    password=(settings.smtp_password.get_secret_value()
                              if settings.smtp_password else None),
                    starttls=settings.smtp_starttls)
    return calendar, mailer


def build_app(settings: Settings | None = None) -> FastStream:
    settings = settings or Settings()
    setup_telemetry("action_executor", settings.log_level)
    secret_box = settings.secret_box()  # refuses to start without SECRETS_KEYS in production
    broker = make_broker(settings.nats_url, "action_executor", settings.shutdown_grace_s,
                         user=settings.nats_user, password=settings.nats_password)
    broker.include_router(actions.build_router(settings.max_concurrency))
    # What the executor publishes (for the AsyncAPI document).
    broker.publisher("actions.results.{org}", schema=ActionResult,
                     title="action_executor/actions.results",
                     description="Where an action stands, for context's tool-use loop "
                                 "(JetStream SB_ACTIONS, one per status).")
    broker.publisher("turns.events.{org}.{turn}", schema=ActionPending | ActionResultFrame,
                     title="action_executor/turns.events",
                     description="Approval cards (action_pending) and outcomes (action_result) "
                                 "for the user's socket, core NATS, seq 0.")
    app = FastStream(broker, specification=AsyncAPI(title="Switchboard action_executor"))
    readiness = serve_ops(app, broker, settings.http_host, settings.http_port,
                          consumers(settings))
    calendar, mailer = build_backends(settings)

    @app.on_startup
    async def connect() -> None:
        valkey = await connect_valkey(settings.valkey_url, settings.connect_timeout_s,
                                      settings.valkey_password)
        readiness.add("valkey", valkey.ping)
        nc = await connect_with_backoff(broker, settings.connect_timeout_s)
        registry = build_registry(Backends(calendar, mailer, valkey, nc,
                                           settings.memory_timeout_s,
                                           ConnectionStore(valkey, secret_box),
                                           settings.egress_policy()))
        service = ActionService(settings, ActionStore(valkey), registry, RateLimiter(valkey),
                                broker, LearningStore(valkey))
        app.context.set_global("actions", service)
        app.context.set_global("valkey", valkey)
        await prepare_jetstream(broker, consumers(settings), ROLES["action_executor"].streams(),
                                replicas=settings.stream_replicas)
        await watch_dead_letters(nc, consumers(settings))

    async def sweep() -> None:
        service: ActionService = app.context.get("actions")
        await service.sweep()

    run_periodically(app, settings.sweep_interval_s, sweep, "action sweep")
    settle_after_startup(app)

    @app.after_shutdown
    async def close() -> None:
        await calendar.close()
        valkey = app.context.get("valkey")
        if valkey is not None:
            await valkey.aclose()

    return app
