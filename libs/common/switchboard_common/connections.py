"""Per-client connections: the client's own CalDAV and SMTP servers, used by the action
executor's calendar and mail tools instead of the deployment's defaults.

Stored in Valkey at `dir:{org}:conn:{client}` (JSON), written through the gateway's REST API,
read by action_executor. Passwords are `SecretStr`: never logged, masked in API answers and in
`repr`, and stored encrypted (`secretbox`, keys from SECRETS_KEYS) as `{"fernet": "<token>"}`,
so a copy of Valkey's data (a dump, a replica, a backup) does not hold them in clear. A record
written before encryption (a plain string) is still read, and `rotate_all` encrypts it.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as redis
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from redis.exceptions import WatchError

from switchboard_common.secretbox import SecretBox


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


SEALED = "fernet"


def _sealed(model: BaseModel, box: SecretBox) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in model:
        if isinstance(value, SecretStr):
            out[name] = {SEALED: box.encrypt(value.get_secret_value())}
        elif isinstance(value, BaseModel):
            out[name] = _sealed(value, box)
        else:
            out[name] = value
    return out


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED}


def _opened(data: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    return {name: (box.decrypt(value[SEALED]) if _is_sealed(value)
                   else _opened(value, box) if isinstance(value, dict) else value)
            for name, value in data.items()}


def _resealed(data: dict[str, Any], box: SecretBox, secret_fields: frozenset[str]
              ) -> dict[str, Any]:
    """Every secret under the newest key; a clear one (written before encryption) sealed."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if _is_sealed(value):
            out[name] = {SEALED: box.rotate(value[SEALED])}
        elif name in secret_fields and isinstance(value, str):
            out[name] = {SEALED: box.encrypt(value)}
        elif isinstance(value, dict):
            out[name] = _resealed(value, box, secret_fields)
        else:
            out[name] = value
    return out


_SECRET_FIELDS = frozenset({"password"})
"""The SecretStr fields of the connection models (checked by the tests)."""


class ConnectionStore:
    def __init__(self, client: redis.Redis, box: SecretBox) -> None:
        self._r = client
        self._box = box

    @staticmethod
    def _key(org: str, client: str) -> str:
        return f"dir:{org}:conn:{client}"

    async def get(self, org: str, client: str) -> ClientConnections | None:
        raw = await self._r.get(self._key(org, client))
        if not raw:
            return None
        return ClientConnections.model_validate(_opened(json.loads(raw), self._box))

    async def put(self, org: str, client: str, connections: ClientConnections) -> None:
        await self._r.set(self._key(org, client), json.dumps(_sealed(connections, self._box)))

    async def rotate_all(self) -> int:
        """Re-encrypt every stored secret under the newest key (and encrypt any still in
        clear); returns how many records were rewritten. Safe while the gateway writes: each
        record is rewritten only if it did not change since it was read (WATCH), else re-read."""
        count = 0
        async for key in self._r.scan_iter(match="dir:*:conn:*", count=500):
            async with self._r.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        raw = await pipe.get(key)
                        if raw is None:
                            break
                        fresh = json.dumps(_resealed(json.loads(raw), self._box,
                                                     _SECRET_FIELDS))
                        pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
                        pipe.set(key, fresh)
                        await pipe.execute()
                        count += 1
                        break
                    except WatchError:
                        continue
        return count

    async def delete(self, org: str, client: str) -> bool:
        return bool(await self._r.delete(self._key(org, client)))
