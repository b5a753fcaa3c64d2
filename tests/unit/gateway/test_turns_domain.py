"""SeqFilter (what a socket is sent of a turn) and identity resolution (pure)."""

from __future__ import annotations

import pytest

from switchboard_gateway.domain.identity import Identity, InvalidIdentity, resolve_identity
from switchboard_gateway.domain.turns import SeqFilter


def run(f: SeqFilter, events: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return [e for e in events if f.accept(*e)]


def test_overlap_of_replay_and_live_is_sent_once_in_order() -> None:
    f = SeqFilter()
    replayed = [("delta", 1), ("delta", 2), ("delta", 3)]
    live = [("delta", 2), ("delta", 3), ("delta", 4), ("turn_completed", 5)]
    assert run(f, replayed + live) == [*replayed, ("delta", 4), ("turn_completed", 5)]
    assert f.finished and f.last_seq == 5


def test_resume_skips_what_the_client_has() -> None:
    f = SeqFilter(last_seq=2)
    assert run(f, [("delta", 1), ("turn_retry", 2), ("delta", 3)]) == [("delta", 3)]


def test_nothing_after_the_first_terminal_event() -> None:
    f = SeqFilter()
    assert run(f, [("error", 1), ("turn_completed", 2), ("delta", 3)]) == [("error", 1)]


def test_terminal_already_seen_by_the_client_ends_silently() -> None:
    f = SeqFilter(last_seq=9)
    assert run(f, [("delta", 8), ("turn_completed", 9)]) == []
    assert f.finished


def test_events_without_seq_pass_until_the_end() -> None:
    f = SeqFilter(last_seq=4)
    assert run(f, [("turn_started", 0), ("error", 0), ("turn_started", 0)]) == [
        ("turn_started", 0), ("error", 0)]


def test_identity_validation_has_no_default_identity() -> None:
    assert resolve_identity("acme", "va_1") == Identity(org="acme", user="va_1")
    with pytest.raises(InvalidIdentity, match="invalid org and user"):
        resolve_identity(None, "")
    with pytest.raises(InvalidIdentity, match="invalid org and user"):
        resolve_identity("a.b", "x y")
    with pytest.raises(InvalidIdentity, match="invalid user"):
        resolve_identity("acme", "u" * 65)
