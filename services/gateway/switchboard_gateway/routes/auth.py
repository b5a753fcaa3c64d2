"""Sign-in, sessions, WebSocket tickets and one-time links (see docs/security.md).

A sign-in link is `<gateway>/#signin=<token>`: a fragment, so the token never reaches a server
log; the page reads it and POSTs it to `/v1/auth/signin` for a session token."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.directory import User
from switchboard_common.envelope import Id
from switchboard_gateway.deps import Auth, Config, Credential, Dir, Me, source_address
from switchboard_gateway.domain.access import require_admin
from switchboard_gateway.domain.auth import AuthMethod, Role, Unauthorized
from switchboard_gateway.handlers.auth import TooManyFailures
from switchboard_gateway.routes.errors import COMMON, CONFLICT, NOT_FOUND, UNAUTHORIZED

router = APIRouter(prefix="/v1", tags=["auth"])

class SigninIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)


class SessionOut(BaseModel):
    session: str
    """Send as `Authorization: Bearer <session>`."""
    expires_at: datetime
    org: str
    user: str
    role: Role


class WhoAmI(BaseModel):
    org: str
    user: str
    role: Role
    auth: AuthMethod


class Ticket(BaseModel):
    ticket: str
    """Open `/ws?ticket=<ticket>` within `expires_in_s`; it works once."""
    expires_in_s: int


class SigninLink(BaseModel):
    user: User
    link: str
    """`<gateway>/#signin=<token>`: works once, until `expires_at`. Shown only here."""
    expires_at: datetime


class Invite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    display_name: str = Field("", max_length=200)
    role: Role = "member"


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@router.post("/auth/signin", response_model=SessionOut, responses=UNAUTHORIZED,
             summary="Trade a one-time sign-in token for a session")
async def signin(body: SigninIn, request: Request, auth: Auth) -> SessionOut:
    try:
        me, session, expires = await auth.sign_in(source_address(request), body.token)
    except Unauthorized as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    except TooManyFailures as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc),
                            headers={"Retry-After": str(exc.retry_after_s)}) from None
    return SessionOut(session=session, expires_at=_at(expires), org=me.org, user=me.user.id,
                      role=me.user.role)


@router.get("/auth/me", response_model=WhoAmI, responses=UNAUTHORIZED,
            summary="Who the credential belongs to, and how it was verified")
async def whoami(me: Me) -> WhoAmI:
    return WhoAmI(org=me.org, user=me.user.id, role=me.user.role, auth=me.method)


@router.post("/auth/signout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
             responses=UNAUTHORIZED, summary="Revoke the session this request carries")
async def signout(credential: Credential, auth: Auth) -> Response:
    await auth.sign_out(credential[0])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/auth/ws-ticket", response_model=Ticket, responses=UNAUTHORIZED,
             summary="A one-time, short-lived ticket to open the WebSocket")
async def ws_ticket(credential: Credential, auth: Auth, settings: Config) -> Ticket:
    ticket = await auth.sessions.issue_ticket(credential[0], settings.ws_ticket_ttl_s)
    return Ticket(ticket=ticket, expires_in_s=settings.ws_ticket_ttl_s)


async def _link(request: Request, auth: Auth, settings: Config, org: str, user: User
                ) -> SigninLink:
    token = await auth.links.issue(org, user.id, settings.signin_link_ttl_s)
    base = settings.public_url or str(request.base_url)
    expires = datetime.now(UTC).timestamp() + settings.signin_link_ttl_s
    return SigninLink(user=user, link=f"{base.rstrip('/')}/#signin={token}",
                      expires_at=_at(expires))


@router.post("/invites", response_model=SigninLink, status_code=status.HTTP_201_CREATED,
             responses={**COMMON, **CONFLICT},
             summary="Add a user to the org and get their one-time sign-in link (admin)")
async def invite(body: Invite, request: Request, me: Me, directory: Dir, auth: Auth,
                 settings: Config) -> SigninLink:
    require_admin(me, "invite users")
    user = User(id=body.id, display_name=body.display_name, role=body.role)
    if not await directory.add_user(me.org, user):
        raise HTTPException(status.HTTP_409_CONFLICT, f"user {body.id!r} already exists")
    return await _link(request, auth, settings, me.org, user)


@router.post("/users/{user_id}/signin-link", response_model=SigninLink,
             status_code=status.HTTP_201_CREATED,
             responses={**COMMON, **NOT_FOUND},
             summary="A new one-time sign-in link for a user of the org (admin)")
async def signin_link(user_id: Id, request: Request, me: Me, directory: Dir, auth: Auth,
                      settings: Config) -> SigninLink:
    require_admin(me, "make sign-in links")
    user = await directory.get_user(me.org, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id!r} in this org")
    return await _link(request, auth, settings, me.org, user)
