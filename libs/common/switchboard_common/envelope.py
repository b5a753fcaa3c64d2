"""The envelope every bus message carries: ids, org, schema version, time.

Trace context is not in the body: it travels in the NATS message headers (W3C `traceparent`),
put there and read by FastStream's telemetry middleware (see bus.py). JetStream keeps headers
with the message, so a redelivery continues the same trace."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

# Ids travel inside NATS subject tokens, so they must never contain `.`, `*`, `>` or spaces.
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError("must be 1-64 characters of letters, digits, '_' or '-'")
    return value


Id = Annotated[str, AfterValidator(_check_id)]
"""An identifier that is safe to use as a NATS subject token."""


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Base of every bus message. Unknown fields are ignored so a newer producer
    can add fields without breaking an older consumer (schema_version bumps on breaking change)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    message_id: str = Field(default_factory=new_id)
    org_id: Id
    created_at: datetime = Field(default_factory=utcnow)
