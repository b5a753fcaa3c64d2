"""Request/reply to a service behind the bus, with one typed failure for "nobody answered"."""

from __future__ import annotations

from typing import TypeVar

from nats.aio.client import Client as NatsClient
from pydantic import BaseModel

from switchboard_common.bus import NoAnswer, request_reply
from switchboard_common.errors import ErrorCode, SwitchboardError

R = TypeVar("R", bound=BaseModel)


class Unavailable(SwitchboardError):
    """The service that answers this request is not running or too slow (HTTP 503)."""

    code = ErrorCode.UNAVAILABLE
    retryable = True


async def ask(nc: NatsClient, subject: str, request: BaseModel, reply: type[R],
              timeout_s: float, service: str) -> R:
    try:
        return await request_reply(nc, subject, request, reply, timeout_s)
    except NoAnswer as exc:
        raise Unavailable(
            f"no {service} service answered within {timeout_s:g} s; is it running?") from exc
