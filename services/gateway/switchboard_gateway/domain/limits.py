"""Consumption limits (pure): what an org may use, and the refusals and warnings the edge
sends. Counting happens in adapters/limits.py (Valkey); this module only decides.

Every value has a deployment default (gateway settings, `GATEWAY_LIMIT_*`); an org admin may
override any of them for their org (`PUT /v1/limits`). See docs/security.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.errors import ErrorCode

MAX_TOKEN_BUDGET = 10**15
"""A budget beyond any month's use, and still exact as a double (below 2**53), which is what
the admission script compares it as (a Lua number): a larger one is a 422."""


class OrgLimits(BaseModel):
    """The limits in force for one org (defaults merged with the org's overrides)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    turns_per_minute_user: int = Field(120, ge=1, le=100_000)
    """User messages one user may start in any 60 s (moving window)."""
    turns_per_minute_org: int = Field(1200, ge=1, le=1_000_000)
    """User messages the whole org may start in any 60 s (moving window)."""
    concurrent_turns_user: int = Field(20, ge=1, le=10_000)
    """Turns of one user running at once, over all their sockets and gateway replicas."""
    concurrent_turns_socket: int = Field(8, ge=1, le=1000)
    """Turns one socket may follow at once."""
    sockets_per_user: int = Field(20, ge=1, le=10_000)
    """Open WebSockets of one user on one gateway replica."""
    ingest_events_per_minute: int = Field(6000, ge=1, le=10_000_000)
    """Events one caller may upload to memory in any 60 s (moving window)."""
    monthly_token_budget: int | None = Field(None, ge=0, le=MAX_TOKEN_BUDGET)
    """Tokens (input, cached input and output) the org may use per calendar month (UTC);
    None: unlimited. At the budget, new turns are refused with `quota_exceeded`."""
    budget_warning_fraction: float = Field(0.8, gt=0, le=1)
    """From this share of the budget on, each new turn first gets a `budget_warning` frame."""


class LimitsUpdate(BaseModel):
    """`PUT /v1/limits`: the fields to override (null on `monthly_token_budget` removes the
    budget; `reset` drops every override and returns to the deployment defaults)."""

    model_config = ConfigDict(extra="forbid")

    turns_per_minute_user: int | None = Field(None, ge=1, le=100_000)
    turns_per_minute_org: int | None = Field(None, ge=1, le=1_000_000)
    concurrent_turns_user: int | None = Field(None, ge=1, le=10_000)
    concurrent_turns_socket: int | None = Field(None, ge=1, le=1000)
    sockets_per_user: int | None = Field(None, ge=1, le=10_000)
    ingest_events_per_minute: int | None = Field(None, ge=1, le=10_000_000)
    monthly_token_budget: int | None = Field(None, ge=0, le=MAX_TOKEN_BUDGET)
    budget_warning_fraction: float | None = Field(None, gt=0, le=1)
    reset: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why something was not started: `rate_limited` (try again after `retry_after_s`) or
    `quota_exceeded` (the monthly budget is spent; it resets at the start of next month)."""

    code: ErrorCode
    message: str
    retry_after_s: float


class LimitExceeded(Exception):
    """A REST request refused by a limit: 429 with `Retry-After` (routes/errors.py)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass(frozen=True)
class BudgetWarning:
    used_tokens: int
    budget_tokens: int


BudgetState = Literal["ok", "warn", "stop"]


def budget_state(limits: OrgLimits, used: int) -> BudgetState:
    budget = limits.monthly_token_budget
    if budget is None:
        return "ok"
    if used >= budget:
        return "stop"
    return "warn" if used >= budget * limits.budget_warning_fraction else "ok"


def seconds_to_next_month(now: datetime) -> float:
    now = now.astimezone(UTC)
    first = (datetime(now.year + 1, 1, 1, tzinfo=UTC) if now.month == 12
             else datetime(now.year, now.month + 1, 1, tzinfo=UTC))
    return (first - now).total_seconds()


def rate_refusal(what: str, per_minute: int, retry_after_s: float) -> Refusal:
    return Refusal(ErrorCode.RATE_LIMITED, f"too many {what}: at most {per_minute} per minute",
                   max(round(retry_after_s, 1), 0.1))


def budget_refusal(limits: OrgLimits, used: int, now: datetime) -> Refusal:
    return Refusal(ErrorCode.QUOTA_EXCEEDED,
                   f"the org's monthly token budget ({limits.monthly_token_budget}) is spent "
                   f"({used} used); it resets at the start of next month (UTC)",
                   round(seconds_to_next_month(now)))
