"""llm_stream settings: env prefix `LLM_STREAM_`; the Anthropic key and base URL are also read
from the conventional unprefixed `ANTHROPIC_API_KEY` / `ANTHROPIC_BASE_URL`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from switchboard_common.settings import WorkerSettings
from switchboard_llm_stream.domain.local_models import DEFAULT_MODEL, LocalModelKey

_PLACEHOLDER_KEYS = {"changeme", "change-me", "placeholder", "your-api-key", "sk-ant-xxx"}


def _env(name: str) -> AliasChoices:
    # Env lookup is case-insensitive and the first match wins: LLM_STREAM_<NAME>, then the
    # conventional unprefixed <NAME>. (populate_by_name keeps `Settings(name=...)` working.)
    return AliasChoices(f"llm_stream_{name}", name)


class Settings(WorkerSettings):
    model_config = SettingsConfigDict(env_prefix="LLM_STREAM_", extra="ignore",
                                      populate_by_name=True)

    # --- JetStream consumer and concurrency ---
    ack_wait_s: float = 15.0
    """Unacked this long -> redelivered. A streaming request sends `in_progress` every
    ack_wait/3, so only a dead or stuck process lets it lapse."""
    max_deliver: int = 5
    max_concurrency: int = 32
    """Model requests handled at once by one process (FastStream max_workers)."""

    # --- retries and bounds (JetStream is the only retry layer) ---
    max_provider_attempts: int = 3
    """Deliveries that may call the provider for one request before a retryable failure is
    reported as the turn's error. Must not exceed max_deliver."""
    retry_backoff_s: float = 0.5
    """Nak delay after a retryable failure: retry_backoff_s * 2**(attempt-1), capped."""
    retry_backoff_max_s: float = 8.0
    provider_timeout_s: float = 60.0
    """SDK timeout per connect/read: a provider that stops sending fails within this."""
    deadline_grace_s: float = 0.5
    """A call still running this long after the turn's deadline is abandoned. The gateway
    owns the client-facing deadline; the grace lets its `turn_timeout` go out first."""
    first_token_timeout_s: float = Field(90.0, gt=0)
    """No first piece of text this long after the model took the request (time spent queued
    behind other requests for the local model does not count) -> `first_token_timeout`."""
    idle_timeout_s: float = Field(30.0, gt=0)
    """No next piece of text this long while streaming -> `stream_idle_timeout`. A slow but
    streaming answer is never cut; only the turn's hard cap (`deadline_at`) bounds it. Time
    this process itself stood still (stopped, a paused VM) does not count against the
    provider, here or in `first_token_timeout_s` (`calls.QuietClock`)."""
    max_tokens_cap: int = 4096

    # --- providers ---
    provider: Literal["auto", "anthropic", "local"] = "auto"
    """auto: Anthropic when an API key is set, else the embedded local model."""
    anthropic_api_key: SecretStr | None = Field(None, validation_alias=_env("anthropic_api_key"))
    anthropic_base_url: str = Field("https://api.anthropic.com",
                                    validation_alias=_env("anthropic_base_url"))
    anthropic_model: str = "claude-sonnet-4-6"
    """Default model (a request may name another). claude-sonnet-4-5 reaches end-of-life
    on 2026-11-30 (the SDK warns), so the default is its successor."""
    local_model: LocalModelKey = DEFAULT_MODEL
    """Which local model runs without an API key: qwen2.5-coder-1.5b (default: picks tools
    reliably), qwen2.5-coder-0.5b or smollm2-135m (faster, weaker)."""
    local_model_path: str | None = None
    """Run this GGUF file instead of the pinned one of `local_model` (not hash-checked: the
    operator's own file)."""
    local_models_dir: Path | None = None
    """Where pinned models are joined from their packages; default ~/.cache/switchboard/models
    (XDG_CACHE_HOME honoured), shared by every stack on the machine."""
    local_threads: int = 2
    local_n_ctx: int = 4096
    local_repeat_penalty: float = Field(1.15, ge=1.0, le=2.0)
    local_temperature: float = Field(0.3, ge=0.0, le=2.0)
    local_route_margin: float = 0.1
    """The local router names a tool only when the tool's first-token logit beats that of
    `none` by this much (a log-probability ratio: 0.1 = about 10% more likely), so a near tie
    is answered in words. The no-tool requests that still got a call end to end had gaps of
    0.02-0.07 and flipped from run to run as the prompt's clock line changed; at 0.1 the
    router gave none of 30 a call and lost one of 70 action requests (gap 0.01) ..."""
    local_route_margins: dict[str, float] = Field(default_factory=dict)
    """... or by this much for these tools (none by default). email_draft used to need 1.0
    against writing help ("a two-line bio"); a tool that needs an address is now offered only
    when the turn names one or memory holds the address of someone it names, which ended
    those calls with no margin (docs/local-model.md)."""
    local_queue_notice_s: float = 5.0
    """While a request waits for the busy local model, the client hears its queue position
    this often (a `queued` frame)."""

    @field_validator("anthropic_api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.max_provider_attempts > self.max_deliver:
            raise ValueError("max_provider_attempts must not exceed max_deliver")
        key = self.anthropic_api_key
        if (key is not None and self.environment != "development"
                and key.get_secret_value().lower() in _PLACEHOLDER_KEYS):
            raise ValueError("ANTHROPIC_API_KEY is a placeholder")
        return self

    @property
    def heartbeat_s(self) -> float:
        return self.ack_wait_s / 3

    def use_anthropic(self) -> bool:
        if self.provider == "auto":
            return self.anthropic_api_key is not None
        return self.provider == "anthropic"
