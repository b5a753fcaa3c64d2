"""Thread contexts: which event continues which, so a reply gets the turn it answers.

In a conversation the turn that holds a fact often only answers the turn before it ("What did
you name the puppy?" / "Biscuit!"), so an event without a context gets the text of the previous
event of its thread as `IngestEvent.context` (a second vector, the mean of both; docs/memory.md
"Thread context"). The rule:

- **A thread** is a client's events of one `source` and one audience: shared, or private to
  one user (the same `user_id`). The context is mixed into a stored vector that other readers'
  searches rank by, so a private event's text never becomes the context of a shared event or
  of another user's event.
- **Continuing** needs the previous event of the thread to have happened at the same time or
  at most `THREAD_GAP` before this one, never after it: the turns of one chat session, stamped
  with the session's time or each with its own a few seconds apart. A longer pause starts a new
  exchange (the next session, another email), and an event that happened before the one ahead
  of it (an upload out of order) gets none.
- **The order is the upload order**, and it does not matter how a sequence is split into
  uploads: `Threads` starts from the last event of each thread seen before (the gateway keeps
  them in Valkey between uploads, adapters/threads.py) and hands back the new ones to keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from switchboard_common.memory import MAX_CONTEXT_CHARS, IngestEvent

THREAD_GAP = timedelta(minutes=5)
"""Chat replies come seconds to a few minutes apart; sessions of a conversation, emails and
notes of a day are further apart than this, and chaining them would mix unrelated texts."""


class ThreadTail(BaseModel):
    """The last event of a thread, as much of it as the next event may take as its context."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    text: str
    occurred_at: datetime


def thread_of(event: IngestEvent) -> str:
    """The thread's name within its client (a source type and an `Id` hold no '/'). A shared
    event's `user_id` (who sent it, if set) does not matter: everyone reads it."""
    audience = event.user_id if event.visibility == "private" else ""
    return f"{event.source}/{audience}"


def _utc(at: datetime) -> datetime:
    # A producer may send naive times; read as UTC so they compare with aware ones.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def continues(tail: ThreadTail, event: IngestEvent) -> bool:
    # An event sent again (a retried upload) is its own tail, not its own context.
    return (tail.event_id != event.event_id
            and timedelta(0) <= _utc(event.occurred_at) - _utc(tail.occurred_at) <= THREAD_GAP)


class Threads:
    """Follows the threads of one client over a sequence of events, in order."""

    def __init__(self, tails: Mapping[str, ThreadTail] | None = None) -> None:
        self._tails = dict(tails or {})
        self.moved: dict[str, ThreadTail] = {}
        """The tails this sequence set: what the next upload continues from."""

    def follow(self, event: IngestEvent) -> IngestEvent:
        """The event with its context filled when it continues its thread (a context the
        producer set is kept); it becomes its thread's tail either way."""
        thread = thread_of(event)
        tail = self._tails.get(thread)
        if tail is not None and not event.context and continues(tail, event):
            event = event.model_copy(update={"context": tail.text})
        # The end of a long turn is what the reply follows on from.
        self._tails[thread] = self.moved[thread] = ThreadTail(
            event_id=event.event_id, text=event.text[-MAX_CONTEXT_CHARS:],
            occurred_at=event.occurred_at)
        return event


def thread_context(events: Iterable[IngestEvent]) -> list[IngestEvent]:
    """The rule over one sequence that continues no earlier one (tests, the retrieval bench)."""
    threads = Threads()
    return [threads.follow(event) for event in events]
