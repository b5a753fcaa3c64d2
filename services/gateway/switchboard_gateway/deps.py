"""Route dependencies. The lifespan in main.py builds these once and puts them on
`app.state`; routes receive them through the Annotated aliases below."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, status
from starlette.requests import HTTPConnection

from switchboard_common.connections import ConnectionStore
from switchboard_common.conversations import ConversationStore
from switchboard_common.directory import Client, Directory
from switchboard_common.envelope import Id
from switchboard_gateway.adapters.events import TurnBus
from switchboard_gateway.adapters.memory import MemoryBus
from switchboard_gateway.adapters.skills import SkillsBus
from switchboard_gateway.adapters.store import TurnStore
from switchboard_gateway.domain.access import Principal, check_client
from switchboard_gateway.domain.identity import Identity, InvalidIdentity, resolve_identity
from switchboard_gateway.handlers.clients import ClientGate
from switchboard_gateway.handlers.turns import TurnService
from switchboard_gateway.settings import Settings


def _state(name: str) -> Callable[[HTTPConnection], Any]:
    """A dependency returning `app.state.<name>` (set by the lifespan in main.py)."""
    def get(conn: HTTPConnection) -> Any:
        return getattr(conn.app.state, name)

    get.__name__ = f"state_{name}"
    return get


Config = Annotated[Settings, Depends(_state("settings"))]
Bus = Annotated[TurnBus, Depends(_state("bus"))]
Store = Annotated[TurnStore, Depends(_state("store"))]
Turns = Annotated[TurnService, Depends(_state("turns"))]
Dir = Annotated[Directory, Depends(_state("directory"))]
Conversations = Annotated[ConversationStore, Depends(_state("conversations"))]
SkillsApi = Annotated[SkillsBus, Depends(_state("skills"))]
Gate = Annotated[ClientGate, Depends(_state("gate"))]
MemoryApi = Annotated[MemoryBus, Depends(_state("memory"))]
Connections = Annotated[ConnectionStore, Depends(_state("connections"))]


def _rest_identity(settings: Config,
                   x_org: Annotated[str | None, Header()] = None,
                   x_user: Annotated[str | None, Header()] = None) -> Identity:
    """REST callers name themselves with X-Org / X-User (dev credential until auth)."""
    try:
        return resolve_identity(x_org, x_user, settings.dev_org, settings.dev_user)
    except InvalidIdentity as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


Caller = Annotated[Identity, Depends(_rest_identity)]


async def _principal(who: Caller, directory: Dir) -> Principal:
    """The caller's user record; an unknown caller is created (the org's first is admin)."""
    return Principal(who.org, await directory.ensure_user(who.org, who.user))


Me = Annotated[Principal, Depends(_principal)]


async def _client(client_id: Id, me: Me, directory: Dir) -> Client:
    """The `{client_id}` path parameter, if the caller may use that client (else the
    access error, mapped to 403/404 by routes.errors)."""
    return check_client(me, client_id, await directory.get_client(me.org, client_id))


AccessibleClient = Annotated[Client, Depends(_client)]
