"""Request/reply to a service behind the bus, with one typed failure for "nobody answered"."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel

from switchboard_common.errors import ErrorCode, SwitchboardError


class Unavailable(SwitchboardError):
    """The service that answers this request is not running or too slow (HTTP 503)."""

    code = ErrorCode.UNAVAILABLE
    retryable = True


async def ask(nc: NatsClient, subject: str, request: BaseModel, timeout_s: float,
              service: str) -> bytes:
    try:
        reply = await nc.request(subject, request.model_dump_json().encode(), timeout=timeout_s)
    except (NoRespondersError, NatsTimeout, TimeoutError) as exc:
        raise Unavailable(
            f"no {service} service answered within {timeout_s:g} s; is it running?") from exc
    return bytes(reply.data)
