"""When a failed model call is tried again (pure).

A delivery of the request is one attempt. JetStream counts deliveries (`num_delivered`), so
the count survives crashes and is shared by every replica. A retryable failure is naked with
exponential backoff while attempts and the turn's deadline allow; otherwise it becomes the
turn's error result. The last delivery JetStream will make never naks: its failure must be
reported, or the turn would end in the dead-letter stream with the client still waiting."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard_common.model import ProviderFailure


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    max_deliver: int
    backoff_s: float
    backoff_max_s: float

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_s * 2.0 ** max(attempt - 1, 0), self.backoff_max_s)

    def retry_after(self, failure: ProviderFailure, attempt: int, time_left_s: float
                    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not failure.retryable:
            return None
        if attempt >= min(self.max_attempts, self.max_deliver):
            return None
        delay = self.backoff(attempt)
        if delay >= time_left_s:
            return None
        return delay
