"""Org-scoped API keys for systems (ingest producers, integrations, the terminal client):
created, listed and revoked by admins. The secret is returned once, at creation; only its
SHA-256 is stored (switchboard_common.credentials)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.credentials import ApiKey, Scope
from switchboard_common.envelope import Id
from switchboard_gateway.deps import Auth, Dir, Me
from switchboard_gateway.domain.access import require_admin
from switchboard_gateway.routes.errors import COMMON, NOT_FOUND, field_error

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=COMMON)


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    scopes: list[Scope] = Field(min_length=1)
    user: Id | None = None
    """The user the key acts as (their role and client assignments); default: the caller."""


class CreatedKey(BaseModel):
    key: ApiKey
    secret: str
    """`sb_...`: send as `Authorization: Bearer <secret>`. Shown only in this response."""


@router.post("", response_model=CreatedKey, status_code=status.HTTP_201_CREATED,
             summary="Create an API key (admin); the secret is shown once")
async def create_key(body: NewKey, me: Me, auth: Auth, directory: Dir) -> CreatedKey:
    require_admin(me, "create API keys")
    user = body.user or me.user.id
    if await directory.get_user(me.org, user) is None:
        raise field_error(("body", "user"), f"no user {user!r} in this org")
    secret, key = await auth.keys.create(me.org, user, body.scopes, body.name)
    return CreatedKey(key=key, secret=secret)


@router.get("", response_model=list[ApiKey], summary="The org's API keys (admin), no secrets")
async def list_keys(me: Me, auth: Auth) -> list[ApiKey]:
    require_admin(me, "list API keys")
    return await auth.keys.list(me.org)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=NOT_FOUND, summary="Revoke an API key (admin)")
async def revoke_key(key_id: Id, me: Me, auth: Auth) -> Response:
    require_admin(me, "revoke API keys")
    if len(key_id) > 64 or not await auth.revoke_key(me.org, key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no API key {key_id!r} in this org")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
