"""Settings shared by every service. Each service subclasses `ServiceSettings` with its own
env prefix (GATEWAY_, CONTEXT_, ...); the infrastructure URLs are read unprefixed
(NATS_URL, VALKEY_URL) because every process of one deployment points at the same servers."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _shared(name: str) -> AliasChoices:
    return AliasChoices(name, name.upper())


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias=_shared("nats_url"))
    valkey_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_shared("valkey_url"))
    log_level: str = Field("INFO", validation_alias=_shared("log_level"))
    environment: str = Field("development", validation_alias=_shared("switchboard_env"))
    connect_timeout_s: float = 30.0
    """How long start-up waits (with backoff) for NATS and Valkey before giving up."""
    shutdown_grace_s: float = 10.0
    """SIGTERM: stop taking new messages, then finish in-flight work within this time."""
