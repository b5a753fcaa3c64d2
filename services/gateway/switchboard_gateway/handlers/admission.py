"""Admission of one socket's turns against the consumption limits: the per-socket cap (in
this process), then the shared limits (adapters/limits.py: rates, concurrent turns per user,
the monthly budget). What a refusal or warning looks like on the wire lives here too.

A refused turn starts nothing: no idempotency key is claimed, so the client may re-send the
same message with the same key after `retry_after_s`."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from switchboard_common.errors import ErrorCode
from switchboard_common.metrics import RATE_LIMIT_REFUSALS
from switchboard_gateway.adapters.limits import Admitted, Limiter
from switchboard_gateway.domain.identity import Identity
from switchboard_gateway.domain.limits import Refusal
from switchboard_gateway.domain.protocol import BudgetWarningFrame, ErrorFrame, UserMessage
from switchboard_gateway.handlers.turns import Claim

log = logging.getLogger(__name__)


def refusal_frame(refusal: Refusal, org: str, key: str | None = None) -> str:
    return ErrorFrame(org_id=org, code=refusal.code, message=refusal.message,
                      retryable=True, idempotency_key=key,
                      retry_after_s=refusal.retry_after_s).model_dump_json()


@dataclass
class SocketAdmission:
    """One per socket."""

    limiter: Limiter
    who: Identity
    per_socket: int
    deadline_s: float
    running: set[str] = field(default_factory=set)

    def reserve(self, msg: UserMessage) -> str | None:
        """The per-socket cap, checked synchronously as the frame is read (before any task or
        Valkey connection is spent on it): None, or the refusal frame."""
        key = msg.idempotency_key
        if key in self.running:
            return None  # a re-send of a turn this socket already follows
        if len(self.running) >= self.per_socket:
            RATE_LIMIT_REFUSALS.labels("concurrent_turns_per_socket").inc()
            return refusal_frame(Refusal(
                ErrorCode.RATE_LIMITED, f"too many turns running on this connection: at most "
                f"{self.per_socket}", 1.0), self.who.org, key)
        self.running.add(key)
        return None

    async def admit(self, msg: UserMessage, claim: Claim | None = None
                    ) -> tuple[bool, list[str]]:
        """The shared limits: (admitted, frames to send first: a refusal or a warning).
        `claim`: the turn's claim of its key, run in the same round trip when admitted."""
        key = msg.idempotency_key
        try:
            verdict = await self.limiter.admit_turn(self.who, key, self.deadline_s,
                                                    claim.step if claim else None)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("turn refused, limits store unavailable: %s", type(exc).__name__)
            return False, [ErrorFrame(org_id=self.who.org, code=ErrorCode.UNAVAILABLE,
                                      message="limits store unavailable, retry", retryable=True,
                                      idempotency_key=key).model_dump_json()]
        if isinstance(verdict, Refusal):
            log.info("org=%s user=%s: turn refused (%s)", self.who.org, self.who.user,
                     verdict.code)
            return False, [refusal_frame(verdict, self.who.org, key)]
        if claim is not None:
            claim.took(verdict.then)
        return True, _warning(verdict, self.who.org, key)

    async def done(self, msg: UserMessage, *, release: bool) -> None:
        """The socket stopped following the turn. `release`: the turn was admitted and ended,
        so its shared slot is freed; one the client walked away from still runs, and holds
        its slot until its deadline."""
        self.running.discard(msg.idempotency_key)
        if release:
            # On failure the slot expires at the turn's deadline by itself.
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await self.limiter.end_turn(self.who, msg.idempotency_key)


def _warning(verdict: Admitted, org: str, key: str) -> list[str]:
    if verdict.warning is None:
        return []
    w = verdict.warning
    return [BudgetWarningFrame(
        org_id=org, idempotency_key=key, used_tokens=w.used_tokens, budget_tokens=w.budget_tokens,
        message=f"the org has used {w.used_tokens} of its {w.budget_tokens} monthly tokens"
    ).model_dump_json()]
