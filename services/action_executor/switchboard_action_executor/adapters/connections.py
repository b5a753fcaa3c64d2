"""Which servers a client's calendar and mail tools talk to: the client's own (configured
through the REST API, see switchboard_common.connections) or else the deployment's defaults.
The configuration is read on every tool call (one Valkey GET, small next to a CalDAV or SMTP
round trip), so a change applies to the next action; clients to the same server share one
HTTP connection pool.

A client's own server is checked against the egress policy before every use (the gateway
checked it when it was written, but a name may resolve elsewhere since): a destination that is
not public, or the platform's own, fails the call for good (`switchboard_common.egress`)."""

from __future__ import annotations

from switchboard_action_executor.adapters.caldav import CalDav
from switchboard_action_executor.adapters.smtp import Mailer
from switchboard_action_executor.domain.registry import ToolError
from switchboard_common.connections import (
    CalDavConnection,
    ClientConnections,
    ConnectionStore,
    SmtpConnection,
)
from switchboard_common.egress import EgressPolicy, UnsafeDestination
from switchboard_common.secretbox import UndecryptableSecret


def _secret(value: object) -> str | None:
    get = getattr(value, "get_secret_value", None)
    return get() if get else None


class ClientBackends:
    def __init__(self, store: ConnectionStore | None, calendar: CalDav, mailer: Mailer,
                 egress: EgressPolicy) -> None:
        self._store = store
        self._egress = egress
        self._default_calendar = calendar
        self._default_mailer = mailer
        self._calendars: dict[tuple[str, str, str | None, str | None], CalDav] = {}

    async def _connections(self, org: str, client: str) -> ClientConnections | None:
        if self._store is None:
            return None
        try:
            return await self._store.get(org, client)
        except UndecryptableSecret as exc:
            # A key was dropped from SECRETS_KEYS too early: no retry will help.
            raise ToolError(f"the client's server settings cannot be read: {exc}") from None

    async def calendar(self, org: str, client: str) -> CalDav:
        conn = await self._connections(org, client)
        if not conn or not conn.caldav:
            return self._default_calendar
        try:
            await self._egress.check_url(conn.caldav.url)
        except UnsafeDestination as exc:
            raise ToolError(f"the client's calendar server is refused: {exc}") from None
        return self._calendar_for(conn.caldav)

    async def mailer(self, org: str, client: str) -> Mailer:
        conn = await self._connections(org, client)
        if not conn or not conn.smtp:
            return self._default_mailer
        try:
            await self._egress.check(conn.smtp.host, conn.smtp.port)
        except UnsafeDestination as exc:
            raise ToolError(f"the client's mail server is refused: {exc}") from None
        return self._mailer_for(conn.smtp)

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
