"""One error shape for the REST API, and where domain errors become status codes.

Every error body is `{"detail": "<message>", "errors": [...]}`: `detail` is for people (for
validation it names each bad field, e.g. `autonomy.mode: Input should be 'suggest', ...`),
`errors` lists the fields for programs (FastAPI's `loc`/`msg`/`type`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from switchboard_common.skills import layer_models
from switchboard_gateway.adapters.requests import Unavailable
from switchboard_gateway.domain.access import AccessError, Forbidden, NotFound
from switchboard_gateway.domain.limits import LimitExceeded

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: str
    errors: list[FieldError] = []


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


Responses = dict[int | str, dict[str, Any]]

INVALID: Responses = {422: _doc("a field is invalid; `detail` names it")}
NOT_FOUND: Responses = {404: _doc("no such id in the caller's org")}
FORBIDDEN: Responses = {403: _doc("the caller may not do this; nothing about the target is "
                                  "returned")}
CONFLICT: Responses = {409: _doc("the id is taken, or the target is still in use")}
UNAVAILABLE: Responses = {503: _doc("a dependency (Valkey, NATS, the context service) is "
                                    "unavailable")}
UNAUTHORIZED: Responses = {
    401: _doc("no acceptable credential; `detail` names the problem (never the secret)"),
    429: _doc("too many failed authentications from this address; see Retry-After")}
COMMON: Responses = {**UNAUTHORIZED, **INVALID, **FORBIDDEN, **UNAVAILABLE}
LIMITED: Responses = {429: _doc("a rate limit or quota refused the request; `Retry-After` "
                                "(seconds) says when to try again")}


def invalid(exc: ValidationError, *prefix: str | int) -> RequestValidationError:
    """A validation failure found by our own code, reported like FastAPI's with `loc`
    starting at `prefix` (e.g. "body", "skills")."""
    return RequestValidationError([
        {"loc": (*prefix, *e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)])


def field_error(loc: Sequence[str | int], msg: str, kind: str = "value_error"
                ) -> RequestValidationError:
    """One bad field found by our own code (an id that names nothing, ...)."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": kind}])


def check_models(layer: dict[str, Any], allowed: Sequence[str], *prefix: str | int) -> None:
    """A skills layer may only name models of the deployment's allow-list
    (`GATEWAY_ALLOWED_MODELS`): any id would let a member pick the most expensive model."""
    for name in layer_models(layer):
        if name not in allowed:
            which = "simple" if (layer.get("models") or {}).get("simple") == name else "complex"
            raise field_error((*prefix, "models", which),
                              f"model {name!r} is not allowed here; allowed: "
                              f"{', '.join(allowed)}", "model_not_allowed")


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _body(detail: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"detail": detail, "errors": jsonable_encoder(errors or [])}


async def _on_invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    detail = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
    return JSONResponse(_body(detail, errors), status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _on_access(_: Request, exc: Exception) -> JSONResponse:
    code = (status.HTTP_404_NOT_FOUND if isinstance(exc, NotFound)
            else status.HTTP_403_FORBIDDEN if isinstance(exc, Forbidden)
            else status.HTTP_400_BAD_REQUEST)
    return JSONResponse(_body(str(exc)), code)


async def _on_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("REST request refused, dependency unavailable: %s", type(exc).__name__)
    detail = (str(exc) if isinstance(exc, Unavailable)
              else "a dependency is unavailable, retry")
    return JSONResponse(_body(detail), status.HTTP_503_SERVICE_UNAVAILABLE)


async def _on_limit(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LimitExceeded)
    refusal = exc.refusal
    return JSONResponse(
        {**_body(refusal.message), "code": refusal.code.value,
         "retry_after_s": refusal.retry_after_s},
        status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(max(1, math.ceil(refusal.retry_after_s)))})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_invalid)
    app.add_exception_handler(LimitExceeded, _on_limit)
    app.add_exception_handler(AccessError, _on_access)
    for unavailable in (Unavailable, RedisError, NatsError, TimeoutError, OSError):
        app.add_exception_handler(unavailable, _on_unavailable)
