"""The request's own date phrases, resolved in the client's zone for the prompt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switchboard_common.tools import CalendarCreate, CalendarList
from switchboard_context.domain.date_mentions import mentions_line
from switchboard_context.domain.dates import date_context, normalise_arguments, now_in

# Monday 2026-11-30, 14:44 local time.
NOW = datetime(2026, 11, 30, 14, 44)


@pytest.mark.parametrize(("text", "line"), [
    ("Schedule a call with John tomorrow at 9", '"tomorrow at 9" = 2026-12-01T09:00 (Tuesday)'),
    ("Book a dentist appointment on Friday at 3pm",
     '"on Friday at 3pm" = 2026-12-04T15:00 (Friday)'),
    ("Meet Bob at 9 tomorrow", '"at 9 tomorrow" = 2026-12-01T09:00 (Tuesday)'),
    ("Set up a meeting tomorrow at 4", '"tomorrow at 4" = 2026-12-01T16:00 (Tuesday)'),
    ("offsite planning tomorrow at 14:00", '"tomorrow at 14:00" = 2026-12-01T14:00'),
    ("lunch on December 5th at 12:30", '"December 5th at 12:30" = 2026-12-05T12:30'),
    ("dinner 3 Jan at 7pm", '"3 Jan at 7pm" = 2027-01-03T19:00 (Sunday)'),
    ("at noon on Friday", '"at noon on Friday" = 2026-12-04T12:00'),
    ("sync next Tuesday at 10am", '"next Tuesday at 10am" = 2026-12-08T10:00'),
    ("Add a 30 minute call with Yuki on Monday at 8:30",
     '"on Monday at 8:30" = 2026-12-07T08:30 (Monday)'),  # a weekday is never today
    ("renew my passport by Friday", '"by Friday" = 2026-12-04 (Friday)'),
    ("call the bank at 3pm", '"at 3pm" = 2026-11-30T15:00 (Monday)'),
    ("call the bank at 9:30", '"at 9:30" = 2026-12-01T09:30 (Tuesday)'),  # 9:30 has passed
    ("the review moves to next week", '"next week" = 2026-12-07 (Monday)'),
])
def test_named_dates_are_resolved(text: str, line: str) -> None:
    assert line in mentions_line(text, NOW)


@pytest.mark.parametrize("text", [
    "Add a 30 minute call", "Draft a mail asking for the Q3 sales figures",
    "Find what we know about the Nagoya supplier", "a work week of four ten-hour days",
    "Schedule a 1:1 with Lukas"])
def test_numbers_that_are_not_dates_are_left_alone(text: str) -> None:
    assert mentions_line(text, NOW) == ""


def test_the_prompt_states_the_requests_dates_in_the_clients_zone() -> None:
    # 23:30 UTC on Monday is already Tuesday 08:30 in Tokyo: "tomorrow" is Wednesday there.
    utc = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    tokyo = date_context("Asia/Tokyo", utc, "Call Yuki tomorrow at 9")
    assert 'In this request: "tomorrow at 9" = 2026-12-02T09:00 (Wednesday).' in tokyo
    assert "9:00 tomorrow = 2026-12-02T09:00:00+09:00" in tokyo
    assert now_in("Asia/Tokyo", utc).day == 1
    assert "In this request" not in date_context("Asia/Tokyo", utc, "Thanks!")


def test_a_window_that_ends_where_it_starts_is_widened() -> None:
    same = {"title": "Haircut", "start": "2026-12-05T11:00", "end": "2026-12-05T11:00",
            "duration_minutes": 45}
    event = normalise_arguments(CalendarCreate, same, "Europe/Berlin")
    assert "end" not in event and event["duration_minutes"] == 45  # the duration decides
    assert CalendarCreate.model_validate(event).start.isoformat() == "2026-12-05T11:00:00+01:00"
    listing = normalise_arguments(CalendarList, {"start": "2026-12-01T00:00",
                                                 "end": "2026-12-01T00:00"}, "Asia/Tokyo")
    assert listing["end"] == "2026-12-02T00:00:00+09:00"
    kept = {"title": "x", "start": "2026-12-05T11:00", "end": "2026-12-05T12:00"}
    assert normalise_arguments(CalendarCreate, kept, "UTC")["end"] == "2026-12-05T12:00:00+00:00"
