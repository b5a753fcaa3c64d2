"""Composition root: settings -> provider -> broker -> JetStream consumer -> handler."""

from __future__ import annotations

from typing import Any

from faststream import FastStream
from faststream.specification import AsyncAPI

from switchboard_common import telemetry
from switchboard_common.bus import connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.dead_letter import watch_dead_letters
from switchboard_common.lifecycle import settle_after_startup
from switchboard_common.model import ModelResult
from switchboard_common.ops import serve_ops
from switchboard_common.permissions import ROLES
from switchboard_common.pull_worker import PullWorker, docs_broker
from switchboard_common.streams import MODEL, ConsumerSpec
from switchboard_common.turns import StreamEvent
from switchboard_llm_stream.calls import ModelCalls
from switchboard_llm_stream.domain.provider import Provider
from switchboard_llm_stream.domain.retry import RetryPolicy
from switchboard_llm_stream.handlers import model_requests
from switchboard_llm_stream.settings import Settings


def consumers(settings: Settings) -> tuple[ConsumerSpec, ...]:
    return (ConsumerSpec(MODEL, model_requests.CONSUMER, "model.requested.>",
                         ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),)


def select_provider(settings: Settings) -> Provider:
    """Anthropic when a key is set (or forced), else the embedded local model."""
    if settings.use_anthropic():
        from switchboard_llm_stream.adapters.anthropic import AnthropicProvider

        if settings.anthropic_api_key is None:
            raise ValueError("LLM_STREAM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        return AnthropicProvider(settings.anthropic_api_key.get_secret_value(),
                                 settings.anthropic_base_url, settings.anthropic_model,
                                 settings.provider_timeout_s, settings.max_tokens_cap)
    from switchboard_llm_stream.adapters.local import LocalProvider
    from switchboard_llm_stream.adapters.model_files import default_models_dir
    from switchboard_llm_stream.domain.local_models import MODELS

    return LocalProvider(
        MODELS[settings.local_model], path=settings.local_model_path,
        models_dir=settings.local_models_dir or default_models_dir(),
        n_ctx=settings.local_n_ctx, n_threads=settings.local_threads,
        max_tokens_cap=settings.max_tokens_cap, repeat_penalty=settings.local_repeat_penalty,
        temperature=settings.local_temperature, queue_notice_s=settings.local_queue_notice_s,
        route_margin=settings.local_route_margin,
        route_margins=settings.local_route_margins)


def build_app(settings: Settings | None = None) -> FastStream:
    settings = settings or Settings()
    telemetry.setup("llm_stream", settings.log_level)
    broker = make_broker(settings.nats_url, "llm_stream", settings.shutdown_grace_s,
                         user=settings.nats_user, password=settings.nats_password)
    # What llm_stream publishes (for the AsyncAPI document).
    broker.publisher("turns.events.{org}.{turn}", schema=StreamEvent,
                     title="llm_stream/turns.events",
                     description="delta (per-turn seq) and turn_retry, core NATS, fire-and-"
                                 "forget; kept 15 minutes in SB_TURN_EVENTS for resume.")
    broker.publisher("model.completed.{org}", schema=ModelResult,
                     title="llm_stream/model.completed",
                     description="The call's result or typed failure (SB_RESULTS, Nats-Msg-Id "
                                 "model-result:<turn>:<iteration>).")
    # model.requested is consumed by a PullWorker (see connect).
    docs = docs_broker(broker)
    model_requests.document(docs, settings.max_concurrency)
    app = FastStream(broker, specification=AsyncAPI(broker, docs,
                                                    title="Switchboard llm_stream"))
    workers: list[PullWorker[Any]] = []
    # Ready once the provider has started (the local model is loaded and warm).
    serve_ops(app, broker, settings.http_host, settings.http_port, consumers(settings))
    provider = select_provider(settings)
    policy = RetryPolicy(settings.max_provider_attempts, settings.max_deliver,
                         settings.retry_backoff_s, settings.retry_backoff_max_s)

    @app.on_startup
    async def connect() -> None:
        await provider.start()  # the local model loads and warms before the first turn
        await connect_with_backoff(broker, settings.connect_timeout_s)
        await prepare_jetstream(broker, consumers(settings), ROLES["llm_stream"].streams(),
                                replicas=settings.stream_replicas)
        await watch_dead_letters(broker.connection, consumers(settings))
        calls = ModelCalls(broker, provider, policy, heartbeat_s=settings.heartbeat_s,
                           deadline_grace_s=settings.deadline_grace_s,
                           first_token_s=settings.first_token_timeout_s,
                           idle_s=settings.idle_timeout_s)
        await calls.listen_for_cancels()
        (spec,) = consumers(settings)
        workers.append(model_requests.worker(broker.connection, spec, calls,
                                             settings.max_concurrency))
        await workers[0].start()

    settle_after_startup(app)

    @app.on_shutdown
    async def drain() -> None:
        for worker in workers:
            await worker.stop(settings.shutdown_grace_s)

    @app.after_shutdown
    async def close() -> None:
        await provider.close()

    return app
