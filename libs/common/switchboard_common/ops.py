"""Probes and metrics over HTTP for the worker services: `GET /healthz` (liveness),
`GET /readyz` (readiness: 200 only when the service can do its part of a turn) and
`GET /metrics` (Prometheus text), on `http_port` (0 disables).

The server is uvicorn serving a small Starlette app, started as the *first* start-up hook so
probes answer while the service is still warming up (a model or an index loading): /healthz
says 200 and /readyz says 503 with `started: false` until every start-up hook has run.
FastStream owns SIGINT/SIGTERM (it drains the subscriptions); uvicorn's own signal handlers
would replace FastStream's, so they are not installed here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from faststream import FastStream
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchboard_common.dead_letter import dlq_subject
from switchboard_common.metrics import CONSUMER_PENDING, DLQ_DEPTH
from switchboard_common.streams import DLQ, ConsumerSpec

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]

_CHECK_TIMEOUT_S = 1.0


class Readiness:
    """The named checks behind /readyz; ready when all pass. `started` is set once every
    start-up hook has run (for memory_indexer: the embedder and the index are loaded; for
    llm_stream: the local model is warm)."""

    def __init__(self) -> None:
        self.started = False
        self._checks: dict[str, Check] = {}
        self._on_scrape: list[Callable[[], Awaitable[None]]] = []

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def on_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run `refresh` before each /metrics answer (gauges read from NATS at scrape time)."""
        self._on_scrape.append(refresh)

    async def report(self) -> dict[str, bool]:
        results = {"started": self.started}
        if not self.started:
            return results  # the other checks may need what start-up has not built yet
        for name, check in self._checks.items():
            try:
                async with asyncio.timeout(_CHECK_TIMEOUT_S):
                    results[name] = bool(await check())
            except Exception:  # a probe answers, whatever its dependency does
                results[name] = False
        return results

    async def refresh_metrics(self) -> None:
        for refresh in self._on_scrape:
            try:
                async with asyncio.timeout(_CHECK_TIMEOUT_S):
                    await refresh()
            except Exception as exc:  # stale gauges beat a failed scrape
                log.debug("metrics refresh failed: %s", type(exc).__name__)


def ops_app(readiness: Readiness) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        checks = await readiness.report()
        down = [name for name, ok in checks.items() if not ok]
        return JSONResponse({"ready": not down, "checks": checks, "down": down},
                            status_code=503 if down else 200)

    async def metrics(_: Request) -> Response:
        await readiness.refresh_metrics()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz),
                             Route("/metrics", metrics)])


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # FastStream handles SIGINT/SIGTERM for the whole process (see module docstring).
        yield


def serve_ops(app: FastStream, broker: NatsBroker, host: str, port: int,
              consumers: tuple[ConsumerSpec, ...]) -> Readiness:
    """Serve the probes for `app` from its first start-up hook until after its shutdown,
    with the checks every worker shares (NATS connected) and its consumers' lag on /metrics.
    Call right after creating the FastStream app, before other hooks are registered; add
    service-specific checks to the returned Readiness."""
    readiness = Readiness()
    readiness.add("nats", nats_connected(lambda: broker.connection))
    readiness.on_scrape(jetstream_gauges(lambda: broker.connection, consumers))
    if port == 0:
        return readiness
    server = _Server(uvicorn.Config(ops_app(readiness), host=host, port=port, log_config=None,
                                    log_level="warning", access_log=False, lifespan="off"))
    task: list[asyncio.Task[None]] = []

    @app.on_startup
    async def start() -> None:
        task.append(asyncio.create_task(server.serve()))
        while not server.started:
            if task[0].done():
                task[0].result()  # re-raise why it could not listen
                raise RuntimeError(f"probes server did not start on {host}:{port}")
            await asyncio.sleep(0.01)
        log.info("probes on http://%s:%d (/healthz, /readyz, /metrics)", host, port)

    @app.after_startup
    async def ready() -> None:
        readiness.started = True

    @app.on_shutdown
    async def not_ready() -> None:
        readiness.started = False  # draining: stop taking new work from load balancers

    @app.after_shutdown
    async def stop() -> None:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task[0]

    return readiness


def nats_connected(nc: Callable[[], NatsClient]) -> Check:
    """Check: the NATS connection is up (not reconnecting)."""
    async def check() -> bool:
        return bool(nc().is_connected)
    return check


def jetstream_gauges(nc: Callable[[], NatsClient], specs: tuple[ConsumerSpec, ...]
                     ) -> Callable[[], Awaitable[None]]:
    """A scrape-time refresh of consumer lag and dead-letter depth for this service's
    consumers (each service reports its own consumers, so no series is reported twice)."""
    async def refresh() -> None:
        js = nc().jetstream()
        for spec in specs:
            with contextlib.suppress(NotFoundError):
                info = await js.consumer_info(spec.stream.name, spec.name)
                CONSUMER_PENDING.labels(spec.stream.name, spec.name, "pending").set(
                    info.num_pending or 0)
                CONSUMER_PENDING.labels(spec.stream.name, spec.name, "ack_pending").set(
                    info.num_ack_pending or 0)
        dlq = await js.stream_info(DLQ.name, subjects_filter="dlq.>")
        kept = dlq.state.subjects or {}
        for spec in specs:
            DLQ_DEPTH.labels(spec.stream.name, spec.name).set(
                kept.get(dlq_subject(spec.stream.name, spec.name), 0))
    return refresh
