"""Settings shared by every service. Each service subclasses `ServiceSettings` with its own
env prefix (GATEWAY_, CONTEXT_, ...); the infrastructure settings are read unprefixed
(NATS_URL, VALKEY_URL, NATS_STREAM_REPLICAS) because every process of one deployment points at
the same servers and must agree on the streams it creates.
The credentials are unprefixed too but differ per process: each service has its own NATS user
(NATS_USER/NATS_PASSWORD, permissions in `switchboard_common.permissions`); the Valkey password
(VALKEY_PASSWORD) is the deployment's. Outside development they are required."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchboard_common.egress import EgressPolicy, parse_rules
from switchboard_common.secretbox import SecretBox

NATS_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})
NATS_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def _shared(name: str) -> AliasChoices:
    return AliasChoices(name, name.upper())


def nats_servers(url: str) -> list[str]:
    """The servers named by NATS_URL: one URL, or several comma-separated (a cluster's seed
    list, as `nats` CLI and the server's own `routes` write them). nats-py takes several servers
    only as a list; handed the joined string it fails with `invalid connect url option`, which is
    how the Kubernetes deploy once crash-looped."""
    servers = [part.strip() for part in url.split(",")]
    for server in servers:
        # nats-py reads a bare `host:port` as nats://host:port; check the same reading here.
        parts = urlsplit(server if "://" in server else f"nats://{server}")
        if parts.scheme not in NATS_SCHEMES or not parts.hostname:
            raise ValueError(f"not a NATS server URL: {server!r}")
        _ = parts.port  # raises ValueError for a port that is not a number in range
    return servers


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias=_shared("nats_url"))
    """One server or several, comma-separated (see `nats_servers`)."""
    stream_replicas: int = Field(1, ge=1, le=5, validation_alias=_shared("nats_stream_replicas"))
    """Replicas of every JetStream stream: 1 on one server (embedded), 3 on a NATS cluster.
    Every service creates the streams idempotently, so all of one deployment must agree."""
    nats_user: str | None = Field(None, validation_alias=_shared("nats_user"))
    nats_password: SecretStr | None = Field(None, validation_alias=_shared("nats_password"))
    valkey_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_shared("valkey_url"))
    """No secret here: the password is VALKEY_PASSWORD (an ACL user name may be in the URL)."""
    valkey_password: SecretStr | None = Field(None,
                                              validation_alias=_shared("valkey_password"))
    secrets_keys: SecretStr | None = Field(None, validation_alias=_shared("secrets_keys"))
    """Fernet keys for secrets at rest, comma-separated, newest first (see `secretbox`). Only
    the services that keep client connection secrets read it (`secret_box`)."""
    outbound_allow: str = Field("", validation_alias=_shared("outbound_allow"))
    """Non-public destinations client connections may use anyway (see `egress`)."""
    outbound_deny: str = Field("", validation_alias=_shared("outbound_deny"))
    """Destinations always refused: the platform's own public addresses (see `egress`)."""
    log_level: str = Field("INFO", validation_alias=_shared("log_level"))
    environment: str = Field("development", validation_alias=_shared("switchboard_env"))
    connect_timeout_s: float = 30.0
    """How long start-up waits (with backoff) for NATS and Valkey before giving up."""
    shutdown_grace_s: float = 10.0
    """SIGTERM: stop taking new messages, then finish in-flight work within this time."""

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        # Refused at start-up with the reason, instead of 30 s of connect retries and an exit.
        nats_servers(value)
        return value

    @field_validator("outbound_allow", "outbound_deny")
    @classmethod
    def _egress_rules(cls, value: str) -> str:
        parse_rules(value)  # a typo is refused at start-up, not at the first connection
        return value

    def egress_policy(self) -> EgressPolicy:
        return EgressPolicy.parse(self.outbound_allow, self.outbound_deny)

    @model_validator(mode="after")
    def _require_credentials(self) -> ServiceSettings:
        # An open bus or store lets anyone who reaches it read every client's data.
        if self.environment != "development":
            missing = [name for name, value in (
                ("NATS_USER", self.nats_user), ("NATS_PASSWORD", self.nats_password),
                ("VALKEY_PASSWORD", self.valkey_password)) if not value]
            if missing:
                raise ValueError(f"{', '.join(missing)} must be set outside development "
                                 f"(SWITCHBOARD_ENV={self.environment})")
        return self

    @model_validator(mode="after")
    def _nats_password_survives_the_server_config(self) -> ServiceSettings:
        # Deployments give nats-server each password as `$NATS_PASSWORD_<USER>`, and it parses
        # the substituted value as config: a leading digit or '-' fails (or reads a number or a
        # date), ',' or a space breaks the line, '#' silently cuts the password short.
        password = self.nats_password
        if (self.environment != "development" and password is not None
                and not NATS_PASSWORD.fullmatch(password.get_secret_value())):
            raise ValueError("NATS_PASSWORD: letters and digits only, starting with a letter "
                             "(see deploy/secrets.example.env)")
        return self


    def secret_box(self) -> SecretBox:
        """Raises SecretKeyError outside development without SECRETS_KEYS: the services that
        call it refuse to start rather than store client passwords unprotected."""
        return SecretBox.from_setting(self.secrets_keys, self.environment)


class WorkerSettings(ServiceSettings):
    """A service without a web server of its own (context, llm_stream, action_executor,
    memory_indexer): it serves /healthz, /readyz and /metrics on `http_port`
    (env `<SERVICE>_HTTP_PORT`). The gateway serves the same paths on its own port."""

    http_port: int = Field(8081, ge=0, le=65535)
    """0 disables the probes server (in-process tests; `switchboard up` picks free ports)."""
    http_host: str = "0.0.0.0"
    """Probes come from the kubelet and Prometheus, not from loopback."""
