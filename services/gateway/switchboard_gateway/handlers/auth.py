"""Authentication at the edge, for REST and the WebSocket alike: a credential becomes a
`Principal` (the org's user record, the method and, for API keys, the scopes) or a refusal.

Cost on the hot path: a verified credential is cached in-process (cachetools' TLRUCache,
per-entry expiry) until it expires, at most `auth_cache_s`; revocations reach every replica's
cache at once over NATS (`adapters/revocations.py`), the bound only covers a missed
announcement. A cached request costs a dict lookup plus the directory read every request
already did. Failures are counted per source address (`AuthFailures`)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import redis.asyncio as redis
from cachetools import TLRUCache
from nats.aio.client import Client as NatsClient

from switchboard_common.credentials import ApiKeys, CredentialRevoked, SigninLinks
from switchboard_common.directory import Directory, User
from switchboard_gateway.adapters.auth_failures import AuthFailures
from switchboard_gateway.adapters.oidc import OidcVerifier
from switchboard_gateway.adapters.revocations import Revocations
from switchboard_gateway.adapters.sessions import SessionStore
from switchboard_gateway.domain.access import Principal
from switchboard_gateway.domain.auth import (
    Authenticated,
    AuthMethod,
    ClaimMapping,
    Unauthorized,
    bearer_token,
    credential_kind,
    issue_session,
    verify_session,
)
from switchboard_gateway.domain.identity import InvalidIdentity, resolve_identity
from switchboard_gateway.settings import Settings

log = logging.getLogger(__name__)

_CACHE_SIZE = 100_000


class TooManyFailures(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed authentications from this address; retry in "
                         f"{retry_after_s} s")
        self.retry_after_s = retry_after_s


class Authenticator:
    def __init__(self, *, directory: Directory, sessions: SessionStore, keys: ApiKeys,
                 links: SigninLinks, failures: AuthFailures, oidc: OidcVerifier | None,
                 revocations: Revocations, session_secret: str, session_ttl_s: int,
                 cache_s: float, dev_credential: bool, leeway_s: float) -> None:
        self._directory = directory
        self.sessions = sessions
        self.keys = keys
        self.links = links
        self._session_ttl = session_ttl_s
        self._failures = failures
        self._oidc = oidc
        self._revocations = revocations
        self._watchers: set[tuple[Authenticated, Callable[[], None]]] = set()
        self._secret = session_secret
        self._cache_s = cache_s
        self._dev = dev_credential
        self._leeway = leeway_s
        self._cache: TLRUCache[str, Authenticated] = TLRUCache(
            maxsize=_CACHE_SIZE, ttu=self._until, timer=time.time)

    def _until(self, _token: str, who: Authenticated, now: float) -> float:
        return min(who.expires_at, now + self._cache_s)

    async def authenticate(self, source: str, authorization: str | None,
                           dev_org: str | None = None, dev_user: str | None = None,
                           ticket: str | None = None) -> tuple[Authenticated, Principal]:
        """The caller, or `Unauthorized` / `TooManyFailures`. A request without any
        credential is refused but not counted: it guesses nothing."""
        wait = self._failures.retry_after(source)
        if wait is not None:
            raise TooManyFailures(wait)
        presented = any(v is not None for v in (authorization, dev_org, dev_user, ticket))
        try:
            token = bearer_token(authorization)
            if token is not None:
                who = await self.verify(token)
            elif ticket is not None:
                redeemed = await self.sessions.redeem_ticket(ticket)
                if redeemed is None:
                    raise Unauthorized("unknown, used or expired WebSocket ticket")
                who = redeemed
            elif dev_org is not None or dev_user is not None:
                who = self._dev_identity(dev_org, dev_user)
            else:
                raise Unauthorized("missing credential: send 'Authorization: Bearer <token>'")
            return who, await self.principal(who)
        except Unauthorized as exc:
            if not presented:
                raise
            log.info("authentication refused from %s: %s", source, exc)
            wait = await self._failures.failed(source)
            if wait is not None:
                raise TooManyFailures(wait) from None
            raise

    async def sign_in(self, source: str, token: str) -> tuple[Principal, str, float]:
        """Trade a one-time sign-in token for a session: (the user, the session token, its
        expiry). The sign-in token is gone after this, whether or not the user still exists."""
        wait = self._failures.retry_after(source)
        if wait is not None:
            raise TooManyFailures(wait)
        grant = await self.links.consume(token)
        user = await self._directory.get_user(grant.org, grant.user) if grant else None
        if grant is None or user is None:
            wait = await self._failures.failed(source)
            if wait is not None:
                raise TooManyFailures(wait)
            raise Unauthorized("unknown, used or expired sign-in link")
        session, session_id, expires = issue_session(self._secret, grant.org, grant.user,
                                                     self._session_ttl, time.time())
        log.info("org=%s user=%s signed in (session %s...)", grant.org, grant.user,
                 session_id[:8])
        return Principal(grant.org, user, AuthMethod.SESSION), session, expires

    async def sign_out(self, who: Authenticated) -> None:
        if who.session_id is None:
            return
        await self.sessions.revoke(who.session_id, who.expires_at)
        await self._revoked(CredentialRevoked(org_id=who.org, session_id=who.session_id))

    async def revoke_key(self, org: str, key_id: str) -> bool:
        if not await self.keys.revoke(org, key_id):
            return False
        await self._revoked(CredentialRevoked(org_id=org, key_id=key_id))
        return True

    async def _revoked(self, event: CredentialRevoked) -> None:
        # Here at once (the caller's next request may beat the announcement), then everywhere.
        self.on_revoked(event)
        await self._revocations.announce(event)

    async def start(self) -> None:
        await self._revocations.listen(self.on_revoked)

    def on_revoked(self, event: CredentialRevoked) -> None:
        def revoked(who: Authenticated) -> bool:
            return who.org == event.org_id and (
                (event.session_id is not None and who.session_id == event.session_id)
                or (event.key_id is not None and who.key_id == event.key_id))

        self.forget(revoked)
        for who, end in list(self._watchers):
            if revoked(who):
                end()

    def watch(self, who: Authenticated, end: Callable[[], None]) -> Callable[[], None]:
        """Call `end` when `who`'s credential is revoked (an open socket closes then);
        returns the function that stops watching."""
        entry = (who, end)
        self._watchers.add(entry)
        return lambda: self._watchers.discard(entry)

    async def verify(self, token: str) -> Authenticated:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        kind = credential_kind(token)
        if kind == "session":
            who = verify_session(self._secret, token, self._leeway)
            if who.session_id is None or await self.sessions.revoked(who.session_id):
                raise Unauthorized("session revoked (signed out)")
        elif kind == "api_key":
            key = await self.keys.lookup(token)
            if key is None:
                raise Unauthorized("unknown or revoked API key")
            # Once per cache period per replica: "last used" to within auth_cache_s.
            await self.keys.touch(token, key)
            who = Authenticated(org=key.org, user=key.user, method=AuthMethod.API_KEY,
                                expires_at=math.inf, scopes=frozenset(key.scopes),
                                key_id=key.id)
        elif self._oidc is None:
            raise Unauthorized("identity provider tokens are not accepted: no issuer is "
                               "configured (GATEWAY_OIDC_ISSUER)")
        else:
            who = await self._oidc.verify(token)
            await self._mirror(who)
        if self._cache_s > 0:
            self._cache[token] = who
        return who

    async def _mirror(self, who: Authenticated) -> None:
        """Identity-provider users are authenticated by the provider; the directory mirrors them
        (with the role their token carries) so admins can list them and assign them clients.
        Once per verification, not per request; the token's role is what authorizes."""
        existing = await self._directory.get_user(who.org, who.user)
        role = who.role or "member"
        if existing is None or existing.role != role:
            name = existing.display_name if existing else ""
            await self._directory.put_user(who.org, User(id=who.user, display_name=name,
                                                         role=role))

    def _dev_identity(self, org: str | None, user: str | None) -> Authenticated:
        if not self._dev:
            raise Unauthorized("X-Org/X-User (and ?org=&user=) are accepted only with the "
                               "development credential (GATEWAY_DEV_CREDENTIAL) enabled")
        try:
            named = resolve_identity(org, user)
        except InvalidIdentity as exc:
            raise Unauthorized(str(exc)) from None
        return Authenticated(org=named.org, user=named.user, method=AuthMethod.DEV,
                             expires_at=math.inf)

    async def principal(self, who: Authenticated) -> Principal:
        """The user record: from the identity provider's claims for OIDC (the provider owns
        those people), from the directory otherwise (so a removed or demoted user loses
        access at once). Never created here."""
        if who.method is AuthMethod.OIDC:
            user: User | None = User(id=who.user, role=who.role or "member")
        else:
            user = await self._directory.get_user(who.org, who.user)
        if user is None:
            raise Unauthorized(f"no user {who.user!r} in org {who.org!r}")
        return Principal(who.org, user, who.method, who.scopes)

    def forget(self, matches: Callable[[Authenticated], bool]) -> None:
        """Drop cached verifications (after a sign-out or a key revocation here)."""
        for token, who in list(self._cache.items()):
            if matches(who):
                self._cache.pop(token, None)

    async def close(self) -> None:
        if self._oidc is not None:
            await self._oidc.close()


def build_authenticator(settings: Settings, valkey: redis.Redis, directory: Directory,
                        nc: NatsClient) -> Authenticator:
    oidc = None
    if settings.oidc_issuer and settings.oidc_audience:
        oidc = OidcVerifier(
            settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url,
            settings.oidc_algorithms, settings.oidc_leeway_s, settings.oidc_jwks_refetch_s,
            ClaimMapping(org_claim=settings.oidc_org_claim, user_claim=settings.oidc_user_claim,
                         role_claim=settings.oidc_role_claim,
                         admin_values=frozenset(settings.oidc_admin_values),
                         fixed_org=settings.oidc_org))
    assert settings.session_secret is not None  # the settings validator fills it
    return Authenticator(
        directory=directory, sessions=SessionStore(valkey), keys=ApiKeys(valkey),
        links=SigninLinks(valkey), failures=AuthFailures(valkey, settings.auth_failure_limit),
        oidc=oidc, revocations=Revocations(nc),
        session_secret=settings.session_secret.get_secret_value(),
        session_ttl_s=settings.session_ttl_s, cache_s=settings.auth_cache_s,
        dev_credential=settings.dev_credential, leeway_s=settings.oidc_leeway_s)
