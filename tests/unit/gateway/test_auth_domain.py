"""Pure authentication decisions: credential kinds, claim mapping, session tokens, where the
dev credential and browser origins are acceptable."""

from __future__ import annotations

import time

import jwt
import pytest

from switchboard_gateway.domain.auth import (
    AuthMethod,
    ClaimMapping,
    Unauthorized,
    bearer_token,
    credential_kind,
    dev_credential_problem,
    identity_from_claims,
    issue_session,
    origin_allowed,
    verify_session,
)

MAPPING = ClaimMapping(org_claim="org_id", user_claim="sub", role_claim="realm_access.roles",
                       admin_values=frozenset({"sb-admin"}))
SECRET = "k" * 32


def test_bearer_header_and_credential_kinds() -> None:
    assert bearer_token(None) is None
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    for bad in ("Basic abc", "Bearer", "abc"):
        with pytest.raises(Unauthorized, match="malformed Authorization"):
            bearer_token(bad)
    assert credential_kind("sb_xyz") == "api_key"
    token, _, _ = issue_session(SECRET, "acme", "ana", 60, time.time())
    assert credential_kind(token) == "session"
    assert credential_kind(jwt.encode({"iss": "https://idp"}, "x" * 32)) == "jwt"
    with pytest.raises(Unauthorized, match="malformed credential"):
        credential_kind("nonsense")


def test_sessions_round_trip_and_refuse_tampering() -> None:
    token, session_id, expires = issue_session(SECRET, "acme", "ana", 60, time.time())
    who = verify_session(SECRET, token, leeway_s=0)
    assert (who.org, who.user, who.method, who.session_id) == ("acme", "ana",
                                                               AuthMethod.SESSION, session_id)
    assert who.expires_at == int(expires)
    with pytest.raises(Unauthorized, match="signature is invalid"):
        verify_session("z" * 32, token, leeway_s=0)
    old, _, _ = issue_session(SECRET, "acme", "ana", 60, time.time() - 3600)
    with pytest.raises(Unauthorized, match="session token expired"):
        verify_session(SECRET, old, leeway_s=0)


def test_claims_map_to_org_user_and_role() -> None:
    claims = {"sub": "ana", "org_id": "acme", "exp": 2e9,
              "realm_access": {"roles": ["x", "sb-admin"]}}
    who = identity_from_claims(claims, MAPPING)
    assert (who.org, who.user, who.role, who.method) == ("acme", "ana", "admin", AuthMethod.OIDC)
    member = identity_from_claims({**claims, "realm_access": {"roles": ["x"]}}, MAPPING)
    assert member.role == "member"
    odd = identity_from_claims({**claims, "sub": "auth0|123"}, MAPPING)
    assert odd.user.startswith("u-") and odd.user == identity_from_claims(
        {**claims, "sub": "auth0|123"}, MAPPING).user
    with pytest.raises(Unauthorized, match="org claim"):
        identity_from_claims({"sub": "ana", "exp": 2e9}, MAPPING)
    fixed = ClaimMapping("org_id", "sub", "role", frozenset({"admin"}), fixed_org="solo")
    assert identity_from_claims({"sub": "ana", "exp": 2e9}, fixed).org == "solo"


def test_dev_credential_and_origins() -> None:
    assert dev_credential_problem(False, "production", "0.0.0.0") is None
    assert dev_credential_problem(True, "development", "127.0.0.1") is None
    assert dev_credential_problem(True, "development", "localhost") is None
    assert "loopback" in (dev_credential_problem(True, "development", "0.0.0.0") or "")
    assert "development" in (dev_credential_problem(True, "staging", "127.0.0.1") or "")
    allowed = ["https://app.example"]
    assert origin_allowed(None, "gw:8080", allowed)
    assert origin_allowed("https://app.example", "gw:8080", allowed)
    assert origin_allowed("http://gw:8080", "gw:8080", allowed)
    assert not origin_allowed("https://evil.example", "gw:8080", allowed)
    assert origin_allowed("https://evil.example", "gw:8080", ["*"])
