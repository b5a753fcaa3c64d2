"""Dates in prompts and in tool arguments; when memory is searched and how long it may take."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from switchboard_common.skills import Skills
from switchboard_common.tools import CalendarCreate, TaskAdd
from switchboard_common.untrusted import DATA_RULE
from switchboard_context.adapters.memory import SearchBudget
from switchboard_context.domain.complexity import estimate
from switchboard_context.domain.dates import date_context, normalise_arguments
from switchboard_context.domain.prompt import PromptInputs, RetrievedItem, build
from switchboard_context.domain.retrieval import could_use_memory

# Monday 2026-11-30 23:30 UTC is already Tuesday in Tokyo and still Monday in New York.
NOW = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)


def test_the_prompt_states_now_and_resolved_anchors_in_the_clients_zone() -> None:
    tokyo = date_context("Asia/Tokyo", NOW)
    assert "Now: Tuesday 2026-12-01 08:30 in Asia/Tokyo (UTC+09:00)" in tokyo
    assert "tomorrow = Wednesday 2026-12-02" in tokyo
    assert "Friday = 2026-12-04" in tokyo and "Tuesday = 2026-12-08" in tokyo
    assert "next week's Monday = 2026-12-07" in tokyo
    york = date_context("America/New_York", NOW)
    assert "Now: Monday 2026-11-30 18:30 in America/New_York (UTC-05:00)" in york
    assert "tomorrow = Tuesday 2026-12-01" in york


def test_arguments_are_normalised_to_iso_with_the_clients_offset() -> None:
    args = {"title": "Call", "start": "2026-12-01T09:00:00", "end": "2026-12-01T08:30:00Z",
            "duration_minutes": 30}
    out = normalise_arguments(CalendarCreate, args, "Europe/Berlin")
    assert out["start"] == "2026-12-01T09:00:00+01:00"  # local time as the person meant it
    assert out["end"] == "2026-12-01T09:30:00+01:00"  # the same instant, in the client's zone
    assert out["title"] == "Call" and out["duration_minutes"] == 30
    assert normalise_arguments(CalendarCreate, {"start": "2026-12-01"}, "Asia/Tokyo")[
        "start"] == "2026-12-01T00:00:00+09:00"
    assert normalise_arguments(CalendarCreate, {"start": "soon"}, "UTC") == {"start": "soon"}
    # Date fields stay dates.
    assert normalise_arguments(TaskAdd, {"title": "x", "due": "2026-12-04"}, "UTC")[
        "due"] == "2026-12-04"


def test_timezone_skill_is_validated() -> None:
    assert Skills(timezone="Europe/Berlin").timezone == "Europe/Berlin"
    with pytest.raises(ValidationError, match="unknown time zone"):
        Skills(timezone="Mars/Olympus")


def test_memory_is_searched_unless_the_message_is_small_talk() -> None:
    assert could_use_memory("When is John's board meeting?")
    assert estimate("When is John's board meeting?").level == "simple"
    assert could_use_memory("yes, book it")
    for chatter in ("Thanks!", "thank you so much", "Hi there", "ok", ""):
        assert not could_use_memory(chatter)


def test_lite_prompts_carry_memory_limited_by_count() -> None:
    items = [RetrievedItem(id=f"e{i}", source="email", text=f"fact {i}") for i in range(5)]
    text = "When is John's board meeting?"
    inputs = PromptInputs(client_id="c", client_name="C", skills=Skills(), history=[],
                          user_text=text, retrieved=items, now="Now: X")
    lite = build(inputs, estimate(text), history_budget_tokens=2000, lite_messages=2,
                 lite_memory_items=2)
    assert lite.kind == "lite" and lite.context == "Now: X"
    assert "fact 0" in lite.recall and "fact 1" in lite.recall
    assert "fact 2" not in lite.recall and DATA_RULE in lite.system
    assert lite.tainted_by == ("memory:email:e0", "memory:email:e1")


def test_search_budget_follows_measured_search_time() -> None:
    budget = SearchBudget(floor_s=0.25, ceiling_s=3.0, factor=3.0, margin_s=0.1)
    assert budget.seconds() == 3.0  # nothing measured yet: room for a cold embedder
    for _ in range(20):
        budget.measured(0.02)
    assert budget.seconds() == 0.25  # fast searches: the floor
    for _ in range(20):
        budget.measured(0.4)  # a busy machine: embedding takes 400 ms
    assert 1.2 < budget.seconds() <= 1.31
    budget.measured(50.0)
    assert budget.seconds() == 3.0
