"""action_executor settings: env prefix `ACTION_EXECUTOR_`.

The tool endpoints default to the embedded servers `./dev up` starts on loopback (Radicale,
aiosmtpd); production points them at the client's real CalDAV and SMTP servers."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from switchboard_common.settings import WorkerSettings


class Settings(WorkerSettings):
    model_config = SettingsConfigDict(env_prefix="ACTION_EXECUTOR_", extra="ignore",
                                      populate_by_name=True)

    ack_wait_s: float = 60.0
    """A proposal unacked this long is redelivered. Execution (all attempts of a tool, with
    backoff) is bounded well below it, and a per-action lock stops a concurrent second run."""
    max_deliver: int = 5
    max_concurrency: int = 16
    """Proposals handled at once: the calls of one model response run concurrently."""

    # --- approvals ---
    approval_ttl_s: float = 24 * 3600.0
    """A pending action nobody decided on expires after this."""
    sweep_interval_s: float = 1.0
    resume_after_s: float = 30.0
    """An approved action still not finished after this (its executor died) is run again;
    the idempotency key keeps its effect single."""

    # --- execution ---
    tool_attempts: int = 3
    """Attempts per tool call for transient failures (this is the one retry layer)."""
    retry_backoff_s: float = 0.2
    effect_ttl_s: int = 7 * 24 * 3600
    """How long an action's stored result (its idempotency key) is kept."""
    rate_limit_per_minute: int = 30
    """Default calls per tool per client per minute (a tool may declare its own)."""

    # --- tool endpoints ---
    caldav_url: str = "http://127.0.0.1:5232/"
    caldav_username: str | None = None
    caldav_password: SecretStr | None = None
    caldav_home: str = "switchboard"
    """Collection under which each client's calendar `<org>-<client>` lives."""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "assistant@switchboard.localhost"
    memory_timeout_s: float = 2.0

    # --- tests only ---
    test_crash_point: Literal["", "after_effect", "before_ack"] = ""
    """Development only: SIGKILL this process at that point of an execution (the
    exactly-once test). Refused outside development."""

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.test_crash_point and self.environment != "development":
            raise ValueError("test_crash_point is for tests only")
        return self
