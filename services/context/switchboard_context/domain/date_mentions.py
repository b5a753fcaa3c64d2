"""Dates and times named in the request itself, resolved in the client's zone (pure).

The prompt's anchors list what "tomorrow" or "Friday" mean, but a 1.5B model given "tomorrow
at 9" with those anchors still wrote today's date with the current clock time in 2 of its
first 3 calendar requests: picking the right anchor and joining it with the hour is the step it
gets wrong. Resolving the request's own phrases in code and stating the result next to the
anchors (`"tomorrow at 9" = 2026-12-01T09:00`) leaves the model a copy, not a calculation;
Claude gets the same line and loses nothing.

Hand-written on purpose, for a small fixed English grammar: `dateparser.search_dates` read
"tomorrow at 9" as tomorrow at the current clock time, "on Saturday at 11" as 2027-11-30 and
the pronoun "we" as Wednesday. A phrase not understood here is simply not stated; the anchors
and the model remain.

Meanings follow the anchors: a weekday is the next such day after today (never today itself),
"next Tuesday" is the Tuesday of next week, "next week" is next week's Monday, and an hour
without am/pm from 1 to 6 is afternoon (an assistant's "at 4" is a 4 pm meeting, not a 4 am
one). A time with no day is its next occurrence: today if still ahead, else tomorrow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DAY = (r"(?P<day>today|tonight|tomorrow|the day after tomorrow|next week|"
        r"in (?P<in_n>\d{1,2}) days?|"
        rf"(?:(?P<next>next )|(?:this|on|by) )?(?P<weekday>{'|'.join(_WEEKDAYS)})|"
        rf"(?P<month_a>{_MONTH}) (?P<mday_a>\d{{1,2}})(?:st|nd|rd|th)?|"
        rf"(?P<mday_b>\d{{1,2}})(?:st|nd|rd|th)? (?:of )?(?P<month_b>{_MONTH}))")
# A bare number is a time only with "at", a colon or am/pm: "30 minutes" and "Q3" are not.
_TIME = (r"(?P<time>(?:at |@ ?)(?P<h1>\d{1,2})(?::(?P<m1>[0-5]\d))?(?: ?(?P<ap1>[ap])\.?m\.?)?|"
         r"(?P<h2>\d{1,2})(?::(?P<m2>[0-5]\d))? ?(?P<ap2>[ap])\.?m\.?\b|"
         r"(?P<h3>\d{1,2}):(?P<m3>[0-5]\d)|(?:at )?(?P<noon>noon|midday|midnight))")
_PHRASE = re.compile(
    rf"\b(?:{_DAY}(?:,? (?:at )?{_TIME.replace('?P<', '?P<a')})?"
    rf"|{_TIME.replace('?P<', '?P<b')}(?:,? (?:on )?{_DAY.replace('?P<', '?P<b')})?)(?![\w:])",
    re.IGNORECASE)
_AFTERNOON_HOURS = range(1, 7)


@dataclass(frozen=True)
class Mention:
    phrase: str
    day: date
    at: time | None

    def value(self) -> str:
        stamp = f"{self.day.isoformat()}T{self.at:%H:%M}" if self.at else self.day.isoformat()
        return f'"{self.phrase}" = {stamp} ({self.day:%A})'


def _group(found: re.Match[str], name: str, prefixes: tuple[str, ...]) -> str | None:
    for prefix in prefixes:
        value = found.groupdict().get(prefix + name)
        if value is not None:
            return value
    return None


def _month_day(month: str, mday: str, today: date) -> date | None:
    number = next((i + 1 for i, m in enumerate(_MONTHS) if m.startswith(month[:3].lower())), 0)
    for year in (today.year, today.year + 1):
        try:
            day = date(year, number, int(mday))
        except ValueError:
            return None
        if day >= today:
            return day
    return None


def _day(found: re.Match[str], prefixes: tuple[str, ...], today: date) -> date | None:
    word = (_group(found, "day", prefixes) or "").lower()
    if not word:
        return None
    if weekday := _group(found, "weekday", prefixes):
        if _group(found, "next", prefixes):  # "next Tuesday": that day of next week
            return today + timedelta(days=7 - today.weekday() + _WEEKDAYS.index(weekday.lower()))
        ahead = (_WEEKDAYS.index(weekday.lower()) - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    if (count := _group(found, "in_n", prefixes)) is not None:
        return today + timedelta(days=int(count))
    if month := _group(found, "month_a", prefixes):
        return _month_day(month, _group(found, "mday_a", prefixes) or "", today)
    if month := _group(found, "month_b", prefixes):
        return _month_day(month, _group(found, "mday_b", prefixes) or "", today)
    return {"today": today, "tonight": today, "tomorrow": today + timedelta(days=1),
            "the day after tomorrow": today + timedelta(days=2),
            "next week": today + timedelta(days=7 - today.weekday())}.get(word)


def _time(found: re.Match[str], prefixes: tuple[str, ...]) -> time | None:
    if noon := _group(found, "noon", prefixes):
        return time(0) if noon.lower() == "midnight" else time(12)
    for n in "123":
        hour = _group(found, "h" + n, prefixes)
        if hour is None:
            continue
        h, m = int(hour), int(_group(found, "m" + n, prefixes) or 0)
        meridiem = (_group(found, "ap" + n, prefixes) or "").lower()
        if meridiem == "p" and h < 12:
            h += 12
        elif meridiem == "a" and h == 12:
            h = 0
        elif not meridiem and h in _AFTERNOON_HOURS:
            h += 12
        return time(h, m) if h < 24 else None
    return None


def mentions(text: str, now: datetime) -> list[Mention]:
    """Every date or time phrase of `text` this grammar understands, resolved relative to
    `now` (the client's local time)."""
    today = now.date()
    out = []
    for found in _PHRASE.finditer(text):
        prefixes = ("", "a") if found.group("day") else ("b",)
        day = _day(found, prefixes, today)
        at = _time(found, prefixes)
        if at is None and day is None:
            continue
        if day is None:
            day = today if at is not None and at > now.time() else today + timedelta(days=1)
        out.append(Mention(found.group(0), day, at))
    return out


def mentions_line(text: str, now: datetime) -> str:
    found = mentions(text, now)
    return ("In this request: " + "; ".join(m.value() for m in found) + ".") if found else ""
