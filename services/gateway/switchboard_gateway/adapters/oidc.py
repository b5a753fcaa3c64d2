"""OpenID Connect bearer tokens, verified against the issuer's JWKS with PyJWT.

PyJWT does the cryptography and the claim checks (issuer, audience, expiry with leeway,
pinned algorithms). We keep the key set ourselves instead of using `PyJWKClient` because
PyJWKClient fetches with blocking urllib (it would stall the event loop) and forgets its cache
when a refresh fails, while the rules here are:
- a token whose key id is cached verifies even while the JWKS endpoint is down;
- an unknown key id (the provider rotated) refetches the set, at most once per
  `refetch_s`, so made-up key ids cannot hammer the provider;
- an unknown key id that is still unknown, or cannot be fetched, fails closed (401).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt

from switchboard_gateway.domain.auth import (
    Authenticated,
    ClaimMapping,
    Unauthorized,
    explain,
    identity_from_claims,
)

log = logging.getLogger(__name__)

_FETCH_TIMEOUT_S = 5.0


class OidcVerifier:
    def __init__(self, issuer: str, audience: str, jwks_url: str | None,
                 algorithms: list[str], leeway_s: float, refetch_s: float,
                 mapping: ClaimMapping) -> None:
        self._issuer = issuer
        self._audience = audience
        self._jwks_url = jwks_url
        self._algorithms = algorithms
        self._leeway = leeway_s
        self._refetch_s = refetch_s
        self._mapping = mapping
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(timeout=_FETCH_TIMEOUT_S)

    async def close(self) -> None:
        await self._http.aclose()

    async def verify(self, token: str) -> Authenticated:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token") from None
        alg = header.get("alg")
        if alg not in self._algorithms:
            # Before any key lookup: `none` and HS256-with-the-public-key never get that far.
            raise Unauthorized(f"token algorithm {alg!r} is not accepted")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=self._algorithms, audience=self._audience,
                issuer=self._issuer, leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise Unauthorized(explain(exc)) from None
        return identity_from_claims(claims, self._mapping)

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            # Another request may have fetched while this one waited.
            if kid in self._keys:
                return self._keys[kid]
            if time.monotonic() - self._fetched_at < self._refetch_s:
                raise Unauthorized("token signed with an unknown key")
            self._fetched_at = time.monotonic()
            try:
                self._keys = await self._fetch()
            except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError) as exc:
                log.warning("identity provider keys unavailable: %s", exc)
                raise Unauthorized("identity provider keys unavailable; retry later") from None
        if kid not in self._keys:
            raise Unauthorized("token signed with an unknown key")
        return self._keys[kid]

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        url = self._jwks_url
        if url is None:
            discovery = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
            response = await self._http.get(discovery)
            response.raise_for_status()
            url = self._jwks_url = str(response.json()["jwks_uri"])
        response = await self._http.get(url)
        response.raise_for_status()
        key_set = jwt.PyJWKSet.from_dict(response.json())
        keys = {str(k.key_id): k for k in key_set.keys if k.key_id}
        log.info("identity provider key set fetched: %d keys", len(keys))
        return keys
