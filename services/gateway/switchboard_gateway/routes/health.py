"""Liveness and readiness probes, and Prometheus metrics (the same three paths every worker
service serves on its `http_port`, see switchboard_common.ops)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from switchboard_gateway.deps import Bus, Store

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    nats: bool
    valkey: bool
    down: list[str]
    """Which dependencies are unreachable (empty when ready)."""


@router.get("/healthz", response_model=Health, summary="Liveness: the process serves HTTP")
async def healthz() -> Health:
    return Health()


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "a dependency is down"}},
            summary="Readiness: NATS connected and Valkey answers PING")
async def readyz(bus: Bus, store: Store, response: Response) -> Readiness:
    nats_ok = bus.connected
    valkey_ok = await store.ping(timeout_s=1.0)
    down = [name for name, ok in (("nats", nats_ok), ("valkey", valkey_ok)) if not ok]
    if down:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(ready=not down, nats=nats_ok, valkey=valkey_ok, down=down)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics (text format)",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
