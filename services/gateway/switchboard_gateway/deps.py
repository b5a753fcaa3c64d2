"""Route dependencies. The lifespan in main.py builds these once and puts them on
`app.state`; routes receive them through the Annotated aliases below."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, status
from starlette.requests import HTTPConnection

from switchboard_gateway.adapters.events import TurnBus
from switchboard_gateway.adapters.store import TurnStore
from switchboard_gateway.domain.identity import Identity, InvalidIdentity, resolve_identity
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


Config = Annotated[Settings, Depends(_settings)]
Bus = Annotated[TurnBus, Depends(_bus)]
Store = Annotated[TurnStore, Depends(_store)]
Turns = Annotated[TurnService, Depends(_turns)]


def _rest_identity(settings: Config,
                   x_org: Annotated[str | None, Header()] = None,
                   x_user: Annotated[str | None, Header()] = None) -> Identity:
    """REST callers name themselves with X-Org / X-User (dev credential until auth)."""
    try:
        return resolve_identity(x_org, x_user, settings.dev_org, settings.dev_user)
    except InvalidIdentity as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


Caller = Annotated[Identity, Depends(_rest_identity)]
