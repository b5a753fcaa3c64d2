"""Which servers a client's calendar and mail tools talk to: the client's own (configured
through the REST API, see switchboard_common.connections) or else the deployment's defaults.
The configuration is read on every tool call (one Valkey GET, small next to a CalDAV or SMTP
round trip), so a change applies to the next action; clients to the same server share one
HTTP connection pool."""

from __future__ import annotations

from switchboard_action_executor.adapters.caldav import CalDav
from switchboard_action_executor.adapters.smtp import Mailer
from switchboard_common.connections import CalDavConnection, ConnectionStore, SmtpConnection


def _secret(value: object) -> str | None:
    get = getattr(value, "get_secret_value", None)
    return get() if get else None


class ClientBackends:
    def __init__(self, store: ConnectionStore | None, calendar: CalDav, mailer: Mailer) -> None:
        self._store = store
        self._default_calendar = calendar
        self._default_mailer = mailer
        self._calendars: dict[tuple[str, str, str | None, str | None], CalDav] = {}

    async def calendar(self, org: str, client: str) -> CalDav:
        conn = await self._store.get(org, client) if self._store else None
        return self._calendar_for(conn.caldav) if conn and conn.caldav else self._default_calendar

    async def mailer(self, org: str, client: str) -> Mailer:
        conn = await self._store.get(org, client) if self._store else None
        return self._mailer_for(conn.smtp) if conn and conn.smtp else self._default_mailer

    def _calendar_for(self, c: CalDavConnection) -> CalDav:
        password = _secret(c.password)
        key = (c.url, c.home, c.username, password)
        if key not in self._calendars:
            auth = (c.username, password) if c.username and password else None
            self._calendars[key] = CalDav(c.url, c.home, auth)
        return self._calendars[key]

    @staticmethod
    def _mailer_for(c: SmtpConnection) -> Mailer:
        # Cheap: a Mailer holds settings only and connects per message.
        return Mailer(c.host, c.port, c.mail_from, username=c.username,
                      password=_secret(c.password), starttls=c.starttls)

    async def close(self) -> None:
        for calendar in self._calendars.values():
            await calendar.close()
