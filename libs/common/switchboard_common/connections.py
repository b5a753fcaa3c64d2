"""Per-client connections: the client's own CalDAV and SMTP servers, used by the action
executor's calendar and mail tools instead of the deployment's defaults.

Stored in Valkey at `dir:{org}:conn:{client}` (JSON), written through the gateway's REST API,
read by action_executor. Passwords are `SecretStr`: never logged, masked in API answers and in
`repr`; they are stored in clear in Valkey, which only the services reach (a deployment that
needs more puts Valkey behind TLS and ACLs, or swaps this store for a secret manager).
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as redis
from pydantic import BaseModel, ConfigDict, Field, SecretStr


class CalDavConnection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://", max_length=500)
    home: str = Field("switchboard", max_length=200)
    """Collection under which the client's calendar lives."""
    username: str | None = None
    password: SecretStr | None = None


class SmtpConnection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, max_length=255)
    port: int = Field(587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    mail_from: str = Field(min_length=3, max_length=320)


class ClientConnections(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    caldav: CalDavConnection | None = None
    smtp: SmtpConnection | None = None


def _revealed(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in model:
        if isinstance(value, SecretStr):
            out[name] = value.get_secret_value()
        elif isinstance(value, BaseModel):
            out[name] = _revealed(value)
        else:
            out[name] = value
    return out


class ConnectionStore:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @staticmethod
    def _key(org: str, client: str) -> str:
        return f"dir:{org}:conn:{client}"

    async def get(self, org: str, client: str) -> ClientConnections | None:
        raw = await self._r.get(self._key(org, client))
        return ClientConnections.model_validate(json.loads(raw)) if raw else None

    async def put(self, org: str, client: str, connections: ClientConnections) -> None:
        await self._r.set(self._key(org, client), json.dumps(_revealed(connections)))

    async def delete(self, org: str, client: str) -> bool:
        return bool(await self._r.delete(self._key(org, client)))
