"""Dates the model can use (pure): the current date and time in the client's time zone with
resolved anchors for the prompt, and tool arguments normalised to ISO 8601 with an offset.

A model cannot know today's date, and small models resolve "tomorrow" or "Friday" badly even
when they do; stating the resolved dates lifted argument accuracy from 78% to 95% in our
measurement. Anchors cover today, tomorrow and the next seven weekdays ("Friday" is the next
Friday after today, never today itself), plus next week's Monday.

Normalisation: a date-time the model wrote without an offset is read as local time in the
client's zone (what a person means by "9:00"); one with an offset is kept as the same instant
and written in the client's zone; a bare date in a date-time field means the start of that
day there. Values that do not parse are left alone for the executor's validation to refuse
with a readable message. A window that ends where it starts is widened (`_no_empty_window`).
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from switchboard_common.model import OFFSET_RULE
from switchboard_context.domain import date_mentions

_ORDINAL_DAYS = 7


def now_in(zone: str, now_utc: datetime) -> datetime:
    return now_utc.astimezone(ZoneInfo(zone))


def _offset(moment: datetime) -> str:
    text = moment.strftime("%z")
    return f"UTC{text[:3]}:{text[3:]}"


def date_context(zone: str, now_utc: datetime, text: str = "") -> str:
    """The prompt's lines about now, e.g.
    `Now: Monday 2026-11-30 10:15 in Europe/Berlin (UTC+01:00).`
    `Dates: today = Monday 2026-11-30; tomorrow = Tuesday 2026-12-01; ...`
    and the dates the request `text` names, resolved (`date_mentions`):
    `In this request: "tomorrow at 9" = 2026-12-01T09:00 (Tuesday).`"""
    now = now_in(zone, now_utc)
    today = now.date()
    anchors = [f"today = {today:%A} {today.isoformat()}",
               f"tomorrow = {today + timedelta(days=1):%A} "
               f"{(today + timedelta(days=1)).isoformat()}"]
    for ahead in range(2, _ORDINAL_DAYS + 1):
        day = today + timedelta(days=ahead)
        anchors.append(f"{day:%A} = {day.isoformat()}")
    monday = today + timedelta(days=7 - today.weekday())
    anchors.append(f"next week's Monday = {monday.isoformat()}")
    named = date_mentions.mentions_line(text, now)
    tomorrow_nine = (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    return (f"Now: {now:%A} {today.isoformat()} {now:%H:%M} in {zone} ({_offset(now)}).\n"
            f"Dates: {'; '.join(anchors)}.\n" + (f"{named}\n" if named else "") +
            # The example is labelled with what it means: a bare example dated today was
            # copied as the date of "tomorrow at 9" by the 1.5B local model.
            f"{OFFSET_RULE}, e.g. 9:00 tomorrow = "
            f"{tomorrow_nine.isoformat()}.")


@functools.cache
def _datetime_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields whose JSON schema is a date-time (also inside Optional), whatever pydantic type
    (datetime, AwareDatetime) declares them."""
    out = set()
    for name, spec in model.model_json_schema().get("properties", {}).items():
        options = [spec, *spec.get("anyOf", [])]
        if any(o.get("format") == "date-time" for o in options):
            out.add(name)
    return frozenset(out)


def normalise_arguments(model: type[BaseModel], arguments: dict[str, Any], zone: str
                        ) -> dict[str, Any]:
    """`arguments` with every date-time field of `model` as ISO 8601 with the offset of the
    client's zone (see the module docstring)."""
    tz = ZoneInfo(zone)
    out = dict(arguments)
    for name in _datetime_fields(model):
        value = out.get(name)
        if not isinstance(value, str):
            continue
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            try:
                date.fromisoformat(value.strip())
            except ValueError:
                continue
            moment = datetime.fromisoformat(value.strip() + "T00:00:00")
        moment = moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)
        out[name] = moment.isoformat()
    return _no_empty_window(model, out)


def _no_empty_window(model: type[BaseModel], args: dict[str, Any]) -> dict[str, Any]:
    """An `end` not after `start` (the local model, whose grammar makes date fields required,
    copies the start into the end) is dropped where the tool has a default for it (an
    event's duration), else moved to the end of the start's day (a listing's window)."""
    try:
        start = datetime.fromisoformat(args["start"])
        end = datetime.fromisoformat(args["end"])
    except (KeyError, TypeError, ValueError):
        return args
    if end.tzinfo is None or start.tzinfo is None or end > start:
        return args
    if not model.model_fields["end"].is_required():
        return {k: v for k, v in args.items() if k != "end"}
    midnight = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(),
                                start.tzinfo)
    return {**args, "end": midnight.isoformat()}
