"""A small async CalDAV client (RFC 4791) over httpx: one calendar per client, events as
iCalendar (`icalendar`). Four verbs are all the tools need (MKCALENDAR, PUT, REPORT, DELETE),
so this stays an adapter of ~150 lines rather than the `caldav` package, whose client is
synchronous and brings its own HTTP stack.

Idempotency lives in the protocol: an event's UID and resource name are the action id, and it
is created with `If-None-Match: *`, so a repeated create (retry, redelivery, a crash after the
effect) finds it there (412) instead of making a second event.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import httpx
from icalendar import Calendar, Event, vCalAddress

from switchboard_action_executor.domain.registry import ToolError, TransientToolError

_NS = {"D": "DAV:", "C": "urn:ietf:params:xml:ns:caldav"}
_MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <D:set><D:prop><D:displayname>{name}</D:displayname></D:prop></D:set></C:mkcalendar>"""
_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <D:prop><D:getetag/><C:calendar-data/></D:prop>
 <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
  <C:time-range start="{start}" end="{end}"/>
 </C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _utc(value: datetime) -> str:
    return _aware(value).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _check(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status in (429, 502, 503, 504) or status >= 500:
        raise TransientToolError(f"calendar server busy or failing ({status}) on {what}")
    if status == 401 or status == 403:
        raise ToolError(f"calendar server refused access ({status}) on {what}")
    if status >= 400:
        raise ToolError(f"calendar server answered {status} on {what}")


class CalDav:
    def __init__(self, base_url: str, home: str, auth: tuple[str, str] | None = None,
                 timeout_s: float = 10.0) -> None:
        self._base = base_url.rstrip("/") + "/"
        self._home = home.strip("/")
        self._http = httpx.AsyncClient(auth=auth, timeout=timeout_s)
        self._ready: set[str] = set()

    async def close(self) -> None:
        await self._http.aclose()

    def calendar_url(self, org: str, client: str) -> str:
        return f"{self._base}{self._home}/{org}-{client}/"

    async def _send(self, method: str, url: str, what: str, **kw: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **kw)
        except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
            raise TransientToolError(f"calendar server unreachable ({type(exc).__name__})"
                                     ) from exc

    async def ensure_calendar(self, org: str, client: str) -> str:
        url = self.calendar_url(org, client)
        if url in self._ready:
            return url
        home = await self._send("MKCOL", f"{self._base}{self._home}/", "MKCOL")
        if home.status_code not in (201, 405, 409):
            _check(home, "creating the calendar home")
        made = await self._send("MKCALENDAR", url, "MKCALENDAR",
                                content=_MKCALENDAR.format(name=f"{org}-{client}"))
        if made.status_code not in (201, 405, 409):  # 405/409: it exists already
            _check(made, "creating the calendar")
        self._ready.add(url)
        return url

    async def create(self, org: str, client: str, uid: str, *, title: str, start: datetime,
                     end: datetime, location: str = "", description: str = "",
                     attendees: list[str] | None = None) -> bool:
        """Create the event; False if an event with this UID already exists (a repeat)."""
        cal = Calendar()
        cal.add("prodid", "-//Switchboard//action_executor//EN")
        cal.add("version", "2.0")
        event = Event()
        event.add("uid", uid)
        event.add("dtstamp", datetime.now(UTC))
        # In UTC: a fixed offset (`+09:00` from an ISO 8601 argument) has no IANA zone name, and
        # icalendar would write it as `TZID="+09:00"`, which servers read as a local time of no
        # zone, i.e. nine hours off for a Tokyo client.
        event.add("dtstart", _aware(start).astimezone(UTC))
        event.add("dtend", _aware(end).astimezone(UTC))
        event.add("summary", title)
        if location:
            event.add("location", location)
        if description:
            event.add("description", description)
        for address in attendees or []:
            event.add("attendee", vCalAddress(f"mailto:{address}"))
        cal.add_component(event)
        url = await self.ensure_calendar(org, client)
        response = await self._send(
            "PUT", f"{url}{uid}.ics", "creating the event", content=cal.to_ical(),
            headers={"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"})
        if response.status_code == 412:
            return False
        _check(response, "creating the event")
        return True

    async def list(self, org: str, client: str, start: datetime, end: datetime
                   ) -> list[dict[str, Any]]:
        url = await self.ensure_calendar(org, client)
        response = await self._send(
            "REPORT", url, "listing events",
            content=_QUERY.format(start=_utc(start), end=_utc(end)),
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        _check(response, "listing events")
        events = []
        for node in ET.fromstring(response.content).iterfind(".//C:calendar-data", _NS):
            for item in Calendar.from_ical(node.text or "").walk("VEVENT"):
                events.append({
                    "event_id": str(item.get("uid")),
                    "title": str(item.get("summary", "")),
                    "start": item.decoded("dtstart").isoformat(),
                    "end": item.decoded("dtend").isoformat() if item.get("dtend") else None,
                    "location": str(item.get("location", "")),
                })
        return sorted(events, key=lambda e: e["start"])

    async def delete(self, org: str, client: str, uid: str) -> bool:
        """False when there was no such event."""
        url = await self.ensure_calendar(org, client)
        response = await self._send("DELETE", f"{url}{uid}.ics", "deleting the event")
        if response.status_code == 404:
            return False
        _check(response, "deleting the event")
        return True
