"""Credentials the platform issues itself, stored in Valkey: one-time sign-in links and
org-scoped API keys. Shared by the gateway (which checks and issues them) and the CLI (which
bootstraps the first admin of a local stack before any gateway call is possible).

Only SHA-256 digests of the secrets are stored: they are 256-bit random values, so a plain hash
cannot be reversed or brute-forced (a slow password hash would only cost every request time),
and a copy of Valkey does not let anyone sign in.

Revoking one (sign-out, key revocation) is announced on `auth.revoked.<org>`
(`CredentialRevoked`) so every gateway replica forgets it at once.

Keys:
- `auth:signin:{digest}`   JSON {org, user}, expiring; consumed with GETDEL (one use)
- `auth:key:{digest}`      JSON ApiKey
- `auth:keys:{org}`        hash key_id -> digest (listing and revoking by id)
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum

import redis.asyncio as redis
from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.envelope import Envelope, Id, utcnow

API_KEY_PREFIX = "sb_"


def credential_revoked_subject(org: str) -> str:
    return f"auth.revoked.{org}"


class CredentialRevoked(Envelope):
    """Event (core NATS, every gateway replica): drop this session or API key from the
    in-process cache of verified credentials now, not when the cache entry would expire."""

    session_id: str | None = None
    key_id: str | None = None


class Scope(StrEnum):
    CHAT = "chat"
    """The WebSocket, and reading and changing what the key's user may (not admin operations)."""
    INGEST = "ingest"
    """Uploading events into a client's memory."""
    ADMIN = "admin"
    """Admin operations, when the key's user is an org admin."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SigninGrant(BaseModel):
    org: Id
    user: Id


class ApiKey(BaseModel):
    """A key as stored and listed; the secret itself is shown once, at creation."""

    model_config = ConfigDict(extra="forbid")

    id: str
    org: Id
    user: Id
    """The key acts as this user (their role and client assignments), limited to `scopes`."""
    name: str = Field("", max_length=200)
    scopes: list[Scope]
    prefix: str
    """The first characters of the secret, so people can tell their keys apart."""
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None


class SigninLinks:
    """One-time sign-in tokens: each yields one session, then is gone."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    async def issue(self, org: str, user: str, ttl_s: int) -> str:
        token = secrets.token_urlsafe(32)
        grant = SigninGrant(org=org, user=user)
        await self._r.set(f"auth:signin:{digest(token)}", grant.model_dump_json(), ex=ttl_s)
        return token

    async def consume(self, token: str) -> SigninGrant | None:
        raw = await self._r.getdel(f"auth:signin:{digest(token)}")
        return SigninGrant.model_validate_json(raw) if raw else None


class ApiKeys:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    async def create(self, org: str, user: str, scopes: list[Scope], name: str = ""
                     ) -> tuple[str, ApiKey]:
        """The secret (to show once) and the stored record."""
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(id=secrets.token_hex(8), org=org, user=user, name=name,
                     scopes=sorted(set(scopes)), prefix=secret[:10])
        hashed = digest(secret)
        pipe = self._r.pipeline(transaction=True)
        pipe.set(f"auth:key:{hashed}", key.model_dump_json())
        pipe.hset(f"auth:keys:{org}", key.id, hashed)
        await pipe.execute()
        return secret, key

    async def lookup(self, secret: str) -> ApiKey | None:
        raw = await self._r.get(f"auth:key:{digest(secret)}")
        return ApiKey.model_validate_json(raw) if raw else None

    async def list(self, org: str) -> list[ApiKey]:
        hashes = await self._r.hvals(f"auth:keys:{org}")
        if not hashes:
            return []
        raws = await self._r.mget([f"auth:key:{_text(h)}" for h in hashes])
        keys = [ApiKey.model_validate_json(r) for r in raws if r]
        return sorted(keys, key=lambda k: k.created_at)

    async def revoke(self, org: str, key_id: str) -> bool:
        hashed = await self._r.hget(f"auth:keys:{org}", key_id)
        if hashed is None:
            return False
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(f"auth:key:{_text(hashed)}")
        pipe.hdel(f"auth:keys:{org}", key_id)
        await pipe.execute()
        return True

    async def touch(self, secret: str, key: ApiKey) -> None:
        """Record use. The caller rate-limits this (once per cache period), so a busy key
        does not cost a write per request. XX: a key revoked meanwhile stays deleted."""
        key = key.model_copy(update={"last_used_at": utcnow()})
        await self._r.set(f"auth:key:{digest(secret)}", key.model_dump_json(), xx=True)
