import json
import secrets
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from switchboard_common.settings import ServiceSettings
from switchboard_gateway.domain.auth import dev_credential_problem
from switchboard_gateway.domain.limits import OrgLimits


def _comma_list(value: object) -> object:
    """Lists from the environment as `a,b,c` (JSON lists work too)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True,
                                      env_nested_delimiter="__")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_message_bytes: int = Field(16 * 1024, gt=0)
    """Largest `text` of a user message (UTF-8 bytes); larger gets `message_too_large`."""
    max_frame_bytes: int = Field(1024 * 1024, gt=0)
    """The WebSocket layer drops the connection above this (1009); between the two limits the
    client gets a `message_too_large` frame instead, without the frame being parsed."""
    turn_deadline_s: float = Field(600.0, gt=0)
    """Hard cap: a turn with neither `turn_completed` nor `error` by then gets
    `turn_timeout` (also sent to the services as `deadline_at`). Generous, because a slow
    answer that keeps streaming must not be cut; quiet turns end much sooner (below)."""
    turn_idle_timeout_s: float = Field(150.0, gt=0)
    """Backstop for services that went silent: no frame at all for this long -> the socket
    gets `turn_timeout`. Longer than llm_stream's first-token and idle timeouts, so their
    typed errors reach the client first."""
    idempotency_ttl_s: int = Field(900, gt=0)
    """How long an idempotency key (and turn ownership) is remembered. Matches how long
    SB_TURN_EVENTS keeps a turn's events, so a duplicate within it replays the outcome."""
    ws_compression: bool = False
    """permessage-deflate on the WebSocket. Off: frames are small JSON (a delta is ~100 bytes)
    that barely compress, while deflating each one costs the gateway CPU per frame and every
    socket keeps a compressor's buffers for its lifetime, idle or not (docs/performance.md)."""
    max_outbox_frames: int = Field(50_000, gt=0)
    """Frames queued for one socket before it is closed as too slow (1013)."""
    decide_timeout_s: float = Field(45.0, gt=0)
    """How long an approval waits for the action_executor (it executes the approved action
    before answering, bounded by the tool's timeout and retries)."""
    dev_credential: bool = False
    """Accept `X-Org`/`X-User` (REST) and `?org=&user=` (WebSocket) naming an existing user,
    with no secret. Only with SWITCHBOARD_ENV=development on a loopback host; any other
    configuration refuses to start with it on."""
    session_secret: SecretStr | None = None
    """GATEWAY_SESSION_SECRET: signs session tokens. Required outside development (at least
    32 characters); in development a random one is made per process when unset."""
    session_ttl_s: int = Field(12 * 3600, gt=0)
    signin_link_ttl_s: int = Field(72 * 3600, gt=0)
    """How long a one-time sign-in link (first admin, invites) stays usable."""
    ws_ticket_ttl_s: int = Field(30, gt=0, le=300)
    auth_cache_s: float = Field(300.0, ge=0)
    """A verified credential is reused without a store lookup for at most this long (never
    past its expiry). Revocations reach every replica at once over NATS; this bounds how long
    a replica that missed the announcement (disconnected) keeps accepting a revoked one."""
    auth_failure_limit: str = "20/minute"
    """Failed authentications per source address (moving window, shared through Valkey);
    beyond it the address gets 429 until the window lets it in again."""
    forwarded_allow_ips: CommaList = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    """Proxies whose X-Forwarded-For uvicorn trusts. Behind an Ingress, list its addresses
    (or CIDR), or every client shares the proxy's address and its auth-failure limit."""
    allowed_origins: CommaList = Field(default_factory=list)
    """Browser origins allowed to open the WebSocket and call REST (CORS), besides the
    gateway's own origin. `*` allows any (never with credentials in cookies: we use none)."""
    public_url: str | None = None
    """Base of printed sign-in links; defaults to the URL the admin called the gateway on."""
    oidc_issuer: str | None = None
    """Turns on OpenID Connect: bearer JWTs from this issuer are accepted."""
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    """Defaults to `jwks_uri` from the issuer's `/.well-known/openid-configuration`."""
    oidc_algorithms: CommaList = Field(default_factory=lambda: ["RS256", "ES256"])
    oidc_leeway_s: float = Field(30.0, ge=0, le=300)
    oidc_org_claim: str = "org_id"
    oidc_org: str | None = None
    """Single-tenant: every identity provider user belongs to this org (claim ignored)."""
    oidc_user_claim: str = "sub"
    oidc_role_claim: str = "role"
    oidc_admin_values: CommaList = Field(default_factory=lambda: ["admin"])
    oidc_jwks_refetch_s: float = Field(30.0, ge=0)
    """An unknown key id refetches the key set at most this often (rotation works, a flood
    of made-up key ids does not hammer the identity provider)."""
    skills_resolve_timeout_s: float = Field(2.0, gt=0)
    """How long `GET .../skills/resolved` waits for a context replica before answering 503."""
    memory_timeout_s: float = Field(3.0, gt=0)
    """How long a memory search waits for memory_indexer before answering 503."""
    memory_forget_timeout_s: float = Field(30.0, gt=0)
    """Forgetting a whole client can take a while on a large index."""
    limits: OrgLimits = OrgLimits()
    """Deployment defaults of the consumption limits (e.g. GATEWAY_LIMITS__TURNS_PER_MINUTE_USER,
    GATEWAY_LIMITS__MONTHLY_TOKEN_BUDGET); an org admin overrides them per org with
    `PUT /v1/limits`. See docs/security.md."""
    client_cache_s: float = Field(60.0, ge=0)
    """How long a replica trusts a client record (who it is assigned to) when a socket starts
    a turn, at most. Changes reach every replica at once over NATS (`skills.changed.<org>`);
    this bounds how long one that missed the announcement keeps the old record. 0: read the
    directory on every turn."""
    limits_cache_s: float = Field(5.0, ge=0)
    """How long a replica uses an org's limits before reading them again (an admin's change
    takes effect everywhere within this time)."""
    valkey_max_connections: int = Field(200, ge=4)
    """Connections of the gateway's shared Valkey pool (directory, limits, conversations)."""
    valkey_pool_timeout_s: float = Field(5.0, gt=0)
    """How long a request waits for a free pooled connection before `service_unavailable`."""
    allowed_models: CommaList = [
        "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5",
        "local"]
    """Model ids a skills layer may name (`models.simple` / `models.complex`); others get 422.
    Comma-separated in GATEWAY_ALLOWED_MODELS."""
    max_json_depth: int = Field(32, ge=2, le=256)
    """Deepest nesting of arrays/objects accepted in a WebSocket frame or REST body; deeper
    is refused (`too_deep` / 422) without being parsed."""
    max_body_bytes: int = Field(2 * 1024 * 1024, gt=0)
    """Largest REST request body; larger gets 413 before any of it is parsed."""
    web_dir: Path = Path(__file__).resolve().parents[3] / "web" / "dist"
    """The built web app served at `/` (the repository's web/dist by default)."""
    auto_provision_clients: bool | None = None
    """A `user_message` naming an unknown client creates it (name = id, assigned to the
    caller) instead of refusing it with `unknown_client`. Unset: on in development only, so
    `./dev up` works out of the box and production needs clients created through the API."""

    @model_validator(mode="after")
    def _provision_default(self) -> "Settings":
        if self.auto_provision_clients is None:
            self.auto_provision_clients = self.environment == "development"
        return self

    @model_validator(mode="after")
    def _auth_is_safe(self) -> "Settings":
        problem = dev_credential_problem(self.dev_credential, self.environment, self.host)
        if problem:
            raise ValueError(problem)
        if self.session_secret is None:
            if self.environment != "development":
                raise ValueError("GATEWAY_SESSION_SECRET is required outside development")
            self.session_secret = SecretStr(secrets.token_urlsafe(32))
        elif len(self.session_secret.get_secret_value()) < 32:
            raise ValueError("GATEWAY_SESSION_SECRET must be at least 32 characters")
        if self.oidc_issuer and not self.oidc_audience:
            raise ValueError("GATEWAY_OIDC_AUDIENCE is required with GATEWAY_OIDC_ISSUER")
        weak = [a for a in self.oidc_algorithms if a.upper().startswith("HS") or a == "none"]
        if weak:
            # A shared-secret algorithm would let anyone holding the public key sign tokens.
            raise ValueError(f"GATEWAY_OIDC_ALGORITHMS may not include {weak}")
        return self
