"""Route dependencies. The lifespan in main.py builds these once and puts them on
`app.state`; routes receive them through the Annotated aliases below."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, status
from starlette.requests import HTTPConnection

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


def _settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def _bus(conn: HTTPConnection) -> TurnBus:
    bus: TurnBus = conn.app.state.bus
    return bus


def _store(conn: HTTPConnection) -> TurnStore:
    store: TurnStore = conn.app.state.store
    return store


def _turns(conn: HTTPConnection) -> TurnService:
    turns: TurnService = conn.app.state.turns
    return turns


def _directory(conn: HTTPConnection) -> Directory:
    directory: Directory = conn.app.state.directory
    return directory


def _conversations(conn: HTTPConnection) -> ConversationStore:
    conversations: ConversationStore = conn.app.state.conversations
    return conversations


def _skills(conn: HTTPConnection) -> SkillsBus:
    skills: SkillsBus = conn.app.state.skills
    return skills


def _memory(conn: HTTPConnection) -> MemoryBus:
    memory: MemoryBus = conn.app.state.memory
    return memory


def _gate(conn: HTTPConnection) -> ClientGate:
    gate: ClientGate = conn.app.state.gate
    return gate


Config = Annotated[Settings, Depends(_settings)]
Bus = Annotated[TurnBus, Depends(_bus)]
Store = Annotated[TurnStore, Depends(_store)]
Turns = Annotated[TurnService, Depends(_turns)]
Dir = Annotated[Directory, Depends(_directory)]
Conversations = Annotated[ConversationStore, Depends(_conversations)]
SkillsApi = Annotated[SkillsBus, Depends(_skills)]
Gate = Annotated[ClientGate, Depends(_gate)]
MemoryApi = Annotated[MemoryBus, Depends(_memory)]


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
