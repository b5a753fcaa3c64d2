"""The thread-context rule: which event continues which, in time, per audience, and the same
whether a sequence comes in one upload or one event per upload."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from switchboard_common.memory import IngestEvent
from switchboard_common.memory_threads import THREAD_GAP, Threads, ThreadTail, thread_context

SESSION = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def turn(eid: str, at: datetime = SESSION, source: str = "turn", user: str | None = None,
         private: bool = False, context: str = "") -> IngestEvent:
    return IngestEvent(org_id="o1", client_id="c1", event_id=eid, source=source,
                       text=f"text of {eid}", occurred_at=at, user_id=user,
                       visibility="private" if private else "client", context=context)


def contexts(events: list[IngestEvent]) -> list[str]:
    return [e.context for e in events]


def test_turns_a_few_seconds_apart_continue_and_a_pause_starts_anew() -> None:
    out = thread_context([
        turn("a"),
        turn("b", SESSION + timedelta(seconds=7)),
        turn("c", SESSION + timedelta(seconds=7)),  # the same time continues too
        turn("d", SESSION + timedelta(seconds=7) + THREAD_GAP),  # the gap itself still does
        turn("e", SESSION + timedelta(seconds=8) + 2 * THREAD_GAP),  # a longer pause: none
        turn("f", SESSION + timedelta(days=3)),  # the next session: none
    ])
    assert contexts(out) == ["", "text of a", "text of b", "text of c", "", ""]


def test_never_from_a_later_event() -> None:
    out = thread_context([turn("late", SESSION + timedelta(seconds=30)), turn("early")])
    assert contexts(out) == ["", ""]


def test_another_source_is_another_thread() -> None:
    out = thread_context([turn("t1"), turn("mail", source="email"), turn("t2")])
    assert contexts(out) == ["", "", "text of t1"]


def test_a_private_text_never_becomes_the_context_of_another_audience() -> None:
    out = thread_context([
        turn("mine", user="u1", private=True),
        turn("shared"),                             # shared after u1's private: none
        turn("shared-by-u1", user="u1"),            # shared, even though u1 sent it
        turn("theirs", user="u2", private=True),    # another user's private: none
        turn("mine-too", user="u1", private=True),  # u1's own thread continues
    ])
    assert contexts(out) == ["", "", "text of shared", "", "text of mine"]


def test_an_event_sent_again_is_not_its_own_context() -> None:
    out = thread_context([turn("a"), turn("b"), turn("b"), turn("c")])
    assert contexts(out) == ["", "text of a", "", "text of b"]


def test_a_producers_context_is_kept_and_the_event_still_leads_on() -> None:
    out = thread_context([turn("a"), turn("b", context="given"), turn("c")])
    assert contexts(out) == ["", "given", "text of b"]


def test_naive_times_read_as_utc() -> None:
    naive = SESSION.replace(tzinfo=None) + timedelta(seconds=5)
    out = thread_context([turn("a"), turn("b", naive), turn("c", SESSION + timedelta(seconds=9))])
    assert contexts(out) == ["", "text of a", "text of b"]


def upload_in_pieces(events: list[IngestEvent], cuts: list[int]) -> list[IngestEvent]:
    """Each piece as the gateway uploads it: starting from the tails the last pieces left."""
    stored: dict[str, ThreadTail] = {}
    out: list[IngestEvent] = []
    for start, end in zip([0, *cuts], [*cuts, len(events)], strict=True):
        threads = Threads(stored)
        out += [threads.follow(e) for e in events[start:end]]
        stored |= threads.moved
    return out


def test_how_a_sequence_is_split_into_uploads_changes_no_context() -> None:
    rng = random.Random(7)
    at, events = SESSION, []
    for i in range(200):
        at += timedelta(seconds=rng.choice([0, 3, 20, 200, 400, 86_400]))
        private = rng.random() < 0.3
        events.append(turn(f"e{i}", at, source=rng.choice(["turn", "note"]),
                           user=rng.choice(["u1", "u2"]) if private else None, private=private))
    whole = contexts(thread_context(events))
    assert sum(1 for c in whole if c) > 50
    assert contexts(upload_in_pieces(events, list(range(1, len(events))))) == whole
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(events)), rng.randint(1, 30)))
        assert contexts(upload_in_pieces(events, cuts)) == whole
