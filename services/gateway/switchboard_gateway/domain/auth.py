"""Authentication decisions that need no I/O: which kind of credential a bearer token is,
what an identity provider's claims mean, how our own session tokens are signed and checked,
and where the development credential and browser origins are acceptable.

Every refusal is an `Unauthorized` whose message names the problem and never contains the
credential itself (messages reach logs and error frames)."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt
from pydantic import TypeAdapter, ValidationError

from switchboard_common.credentials import API_KEY_PREFIX
from switchboard_common.envelope import Id

Role = Literal["admin", "member"]
SESSION_ISSUER = "switchboard"
SESSION_AUDIENCE = "switchboard-session"
_ID: TypeAdapter[str] = TypeAdapter(Id)


class AuthMethod(StrEnum):
    SESSION = "session"
    OIDC = "oidc"
    API_KEY = "api_key"
    DEV = "dev"


class Unauthorized(Exception):
    """401: the credential is missing or not acceptable. The message is safe to show."""


@dataclass(frozen=True)
class Authenticated:
    """A verified credential. `role` is set only when the credential itself carries it (an
    identity provider's claims); otherwise the directory's user record decides."""

    org: str
    user: str
    method: AuthMethod
    expires_at: float
    """Epoch seconds; verification results are cached until then (bounded by the caller)."""
    role: Role | None = None
    scopes: frozenset[str] | None = None
    """API keys only; None means the full rights of the user."""
    session_id: str | None = None
    key_id: str | None = None


def bearer_token(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()


def credential_kind(token: str) -> Literal["api_key", "session", "jwt"]:
    """API keys carry our prefix; JWTs are three dot-separated parts, and ours name our
    issuer. The unverified issuer only picks the verifier: each one pins its own key and
    algorithms, so claiming to be a session token gains a forger nothing."""
    if token.startswith(API_KEY_PREFIX):
        return "api_key"
    if token.count(".") != 2:
        raise Unauthorized("malformed credential: neither an API key nor a JWT")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Unauthorized("malformed token: not a decodable JWT") from None
    return "session" if claims.get("iss") == SESSION_ISSUER else "jwt"


def explain(exc: jwt.PyJWTError) -> str:
    """What was wrong with a JWT, in words that never include the token."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token not yet valid"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "token audience is not accepted"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "token issuer is not accepted"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "token signature is invalid"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token lacks the {exc.claim!r} claim"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "token algorithm is not accepted"
    return "malformed token"


# --- our own session tokens (HS256, GATEWAY_SESSION_SECRET) ---

def issue_session(secret: str, org: str, user: str, ttl_s: int, now: float
                  ) -> tuple[str, str, float]:
    """A signed session token, its id (for revocation) and its expiry."""
    session_id = secrets.token_hex(16)
    expires = now + ttl_s
    token = jwt.encode({"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": user,
                        "org": org, "jti": session_id, "iat": int(now), "exp": int(expires)},
                       secret, algorithm="HS256")
    return token, session_id, expires


def verify_session(secret: str, token: str, leeway_s: float) -> Authenticated:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=SESSION_AUDIENCE,
                            issuer=SESSION_ISSUER, leeway=leeway_s,
                            options={"require": ["exp", "sub", "org", "jti"]})
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"session {explain(exc)}") from None
    return Authenticated(org=str(claims["org"]), user=str(claims["sub"]),
                         method=AuthMethod.SESSION, expires_at=float(claims["exp"]),
                         session_id=str(claims["jti"]))


# --- identity provider claims ---

@dataclass(frozen=True)
class ClaimMapping:
    org_claim: str
    user_claim: str
    role_claim: str
    admin_values: frozenset[str]
    fixed_org: str | None = None
    """Single-tenant deployments: every IdP user belongs to this org."""


def _claim(claims: dict[str, Any], path: str) -> Any:
    """`a.b.c` reads nested claims (Keycloak's `realm_access.roles`); a key that contains
    dots itself (Auth0's namespaced `https://example.com/org`) is matched whole first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def as_id(value: Any, what: str) -> str:
    """IdP subjects are often not our id syntax (`auth0|5f7c...`): those map to a stable
    `u-<hash>` id, so the same person is always the same user."""
    text = str(value) if value is not None else ""
    if not text:
        raise Unauthorized(f"token lacks the {what}")
    try:
        return _ID.validate_python(text)
    except ValidationError:
        return "u-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def identity_from_claims(claims: dict[str, Any], mapping: ClaimMapping) -> Authenticated:
    org_value = mapping.fixed_org or _claim(claims, mapping.org_claim)
    org = as_id(org_value, f"org claim {mapping.org_claim!r}")
    user = as_id(_claim(claims, mapping.user_claim), f"user claim {mapping.user_claim!r}")
    raw_role = _claim(claims, mapping.role_claim)
    values = {str(v) for v in raw_role} if isinstance(raw_role, list) else {str(raw_role)}
    role: Role = "admin" if values & mapping.admin_values else "member"
    return Authenticated(org=org, user=user, method=AuthMethod.OIDC, role=role,
                         expires_at=float(claims["exp"]))


# --- where the development credential and browser origins are acceptable ---

def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dev_credential_problem(enabled: bool, environment: str, host: str) -> str | None:
    """Why the dev credential may not be enabled here (None: it may)."""
    if not enabled:
        return None
    if environment != "development":
        return f"the dev credential is only allowed when SWITCHBOARD_ENV=development " \
               f"(it is {environment!r})"
    if not is_loopback(host):
        return f"the dev credential is only allowed on a loopback bind (host is {host!r})"
    return None


def origin_allowed(origin: str | None, host_header: str | None, allowed: list[str]) -> bool:
    """Browsers always send Origin on a WebSocket; other clients send none (they are not
    a cross-site risk: they cannot borrow a victim's session). A page served by the gateway
    itself is same-origin (Origin's host equals the Host header)."""
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    return host_header is not None and urlsplit(origin).netloc == host_header
