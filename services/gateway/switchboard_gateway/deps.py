"""Route dependencies. The lifespan in main.py builds these once and puts them on
`app.state`; routes receive them through the Annotated aliases below."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection, Request

from switchboard_common.connections import ConnectionStore
from switchboard_common.conversations import ConversationStore
from switchboard_common.directory import Client, Directory
from switchboard_common.envelope import Id
from switchboard_common.learning import LearningStore
from switchboard_gateway.adapters.events import TurnBus
from switchboard_gateway.adapters.limits import Limiter, SocketCounter
from switchboard_gateway.adapters.memory import MemoryBus
from switchboard_gateway.adapters.skills import SkillsBus
from switchboard_gateway.adapters.store import TurnStore
from switchboard_gateway.domain.access import Principal, check_client
from switchboard_gateway.domain.auth import Authenticated, Unauthorized
from switchboard_gateway.handlers.auth import Authenticator, TooManyFailures
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
Auth = Annotated[Authenticator, Depends(_state("auth"))]
Limits = Annotated[Limiter, Depends(_state("limits"))]
Sockets = Annotated[SocketCounter, Depends(_state("sockets"))]
Learning = Annotated[LearningStore, Depends(_state("learning"))]


def source_address(conn: HTTPConnection) -> str:
    """Where the request came from, for counting failures (behind a proxy, list it in
    GATEWAY_FORWARDED_ALLOW_IPS so this is the client, not the proxy)."""
    return conn.client.host if conn.client else "unknown"


_BEARER = HTTPBearer(auto_error=False, description="An OIDC JWT, a session token from "
                     "`POST /v1/auth/signin`, or an API key (`sb_...`)")


async def _authenticated(request: Request, auth: Auth,
                         _documented: Annotated[object, Depends(_BEARER)]
                         ) -> tuple[Authenticated, Principal]:
    """Every /v1 operation but sign-in depends on this: 401 without an acceptable
    credential, 429 for an address with too many recent failures. `_BEARER` only puts the
    scheme in the OpenAPI document; the header is parsed here, so a malformed one is named.
    The dev headers stay out of the document on purpose."""
    headers = request.headers
    try:
        return await auth.authenticate(source_address(request), headers.get("authorization"),
                                       headers.get("x-org"), headers.get("x-user"))
    except Unauthorized as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc),
                            headers={"WWW-Authenticate": "Bearer"}) from None
    except TooManyFailures as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc),
                            headers={"Retry-After": str(exc.retry_after_s)}) from None


Credential = Annotated[tuple[Authenticated, Principal], Depends(_authenticated)]


async def _principal(credential: Credential) -> Principal:
    return credential[1]


Me = Annotated[Principal, Depends(_principal)]


async def _client(client_id: Id, me: Me, directory: Dir) -> Client:
    """The `{client_id}` path parameter, if the caller may use that client (else the
    access error, mapped to 403/404 by routes.errors)."""
    return check_client(me, client_id, await directory.get_client(me.org, client_id))


AccessibleClient = Annotated[Client, Depends(_client)]
