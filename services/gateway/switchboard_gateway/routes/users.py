"""The caller and the members of their org."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict

from switchboard_common.directory import User
from switchboard_common.envelope import Id
from switchboard_common.untrusted import DisplayName
from switchboard_gateway.deps import Dir, Me
from switchboard_gateway.domain.access import require_admin
from switchboard_gateway.routes.errors import COMMON, CONFLICT

router = APIRouter(prefix="/v1", tags=["users"], responses=COMMON)


class CallerInfo(BaseModel):
    org_id: str
    user: User


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    display_name: DisplayName | Literal[""] = ""
    role: Literal["admin", "member"] = "member"


@router.get("/me", response_model=CallerInfo, summary="The caller's user record")
async def me(who: Me) -> CallerInfo:
    return CallerInfo(org_id=who.org, user=who.user)


@router.get("/users", response_model=list[User], summary="Members of the caller's org")
async def list_users(who: Me, directory: Dir) -> list[User]:
    return await directory.list_users(who.org)


@router.post("/users", response_model=User, status_code=status.HTTP_201_CREATED,
             responses=CONFLICT, summary="Add a member to the org (admin)")
async def add_user(body: NewUser, who: Me, directory: Dir) -> User:
    require_admin(who, "add users")
    user = User(id=body.id, display_name=body.display_name, role=body.role)
    if not await directory.add_user(who.org, user):
        raise HTTPException(status.HTTP_409_CONFLICT, f"user {body.id!r} already exists")
    return user
