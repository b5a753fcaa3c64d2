"""Session revocation and WebSocket tickets in Valkey.

Keys:
- `auth:revoked:{session_id}`  "1", expiring with the session (a signed token cannot be
  recalled, so sign-out records it as revoked until it would have expired anyway)
- `auth:ticket:{digest}`       the authenticated caller as JSON, for `ws_ticket_ttl_s`;
  consumed with GETDEL, so a ticket opens exactly one socket
"""

from __future__ import annotations

import json
import secrets
import time

import redis.asyncio as redis

from switchboard_common.credentials import digest
from switchboard_gateway.domain.auth import Authenticated, AuthMethod


class SessionStore:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    async def revoke(self, session_id: str, expires_at: float) -> None:
        ttl = max(1, int(expires_at - time.time()) + 1)
        await self._r.set(f"auth:revoked:{session_id}", b"1", ex=ttl)

    async def revoked(self, session_id: str) -> bool:
        return bool(await self._r.exists(f"auth:revoked:{session_id}"))

    async def issue_ticket(self, who: Authenticated, ttl_s: int) -> str:
        ticket = secrets.token_urlsafe(32)
        record = {"org": who.org, "user": who.user, "method": who.method.value,
                  "role": who.role, "expires_at": who.expires_at,
                  "scopes": sorted(who.scopes) if who.scopes is not None else None,
                  "session_id": who.session_id, "key_id": who.key_id}
        await self._r.set(f"auth:ticket:{digest(ticket)}", json.dumps(record), ex=ttl_s)
        return ticket

    async def redeem_ticket(self, ticket: str) -> Authenticated | None:
        raw = await self._r.getdel(f"auth:ticket:{digest(ticket)}")
        if raw is None:
            return None
        record = json.loads(raw)
        scopes = record["scopes"]
        return Authenticated(org=record["org"], user=record["user"],
                             method=AuthMethod(record["method"]), role=record["role"],
                             expires_at=float(record["expires_at"]),
                             scopes=frozenset(scopes) if scopes is not None else None,
                             session_id=record["session_id"], key_id=record["key_id"])
