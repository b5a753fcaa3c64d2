"""Skills at every tier, and the resolution context uses.

- system: the org's overrides of the built-in defaults (admins write, members read)
- user:   a user's defaults (the user themselves or an admin)
- template: a template's `skills` (routes/templates.py)
- client: a client's overrides (anyone with access to the client)

A write is validated first (422 naming the field), then stored, then announced on
`skills.changed.<org>`, so no context replica serves the old resolution after the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, ValidationError

from switchboard_common.directory import Directory
from switchboard_common.envelope import Id
from switchboard_common.skills import ResolvedSkills, Tier, validate_layer
from switchboard_gateway.adapters.skills import SkillsBus
from switchboard_gateway.deps import AccessibleClient, Config, Dir, Me, SkillsApi
from switchboard_gateway.domain.access import (
    NotFound,
    Principal,
    check_self_or_admin,
    require_admin,
)
from switchboard_gateway.routes.errors import COMMON, NOT_FOUND, check_models, invalid
from switchboard_gateway.settings import Settings

router = APIRouter(prefix="/v1", tags=["skills"], responses={**COMMON, **NOT_FOUND})

_EXAMPLE = {"preferences": {"meetings": "mornings only"}, "email_tone": "warm",
            "autonomy": {"mode": "assist", "actions": {"email_send": {"auto_execute": 0.95}}},
            "enabled_tools": ["calendar_create", "email_draft"]}
Layer = Annotated[dict[str, Any], Body(
    description="A skills layer: any subset of the skills; `null` removes a key set by an "
                "earlier tier. Unknown keys and wrong types are refused (422).",
    openapi_examples={"client": {"summary": "a client's overrides", "value": _EXAMPLE}})]


class SkillLayer(BaseModel):
    tier: Tier
    subject_id: str | None
    """The user or client the layer belongs to (null for the system tier)."""
    skills: dict[str, Any]
    """The layer as stored (empty when the tier sets nothing)."""


class Resolution(ResolvedSkills):
    user_id: str
    client_id: str


async def _read(directory: Directory, org: str, tier: Tier, subject_id: str | None
                ) -> SkillLayer:
    return SkillLayer(tier=tier, subject_id=subject_id,
                      skills=await directory.get_layer(org, tier, subject_id) or {})


async def _write(directory: Directory, bus: SkillsBus, org: str, tier: Tier,
                 subject_id: str | None, layer: dict[str, Any], settings: Settings
                 ) -> SkillLayer:
    try:
        validate_layer(layer)
    except ValidationError as exc:
        raise invalid(exc, "body") from None
    check_models(layer, settings.allowed_models, "body")
    await directory.put_layer(org, tier, subject_id, layer)
    await bus.changed(org, tier, subject_id)
    return SkillLayer(tier=tier, subject_id=subject_id, skills=layer)


async def _delete(directory: Directory, bus: SkillsBus, org: str, tier: Tier,
                  subject_id: str | None) -> Response:
    if await directory.delete_layer(org, tier, subject_id):
        await bus.changed(org, tier, subject_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _user(directory: Directory, who: Principal, user_id: str, action: str) -> str:
    check_self_or_admin(who, user_id, action)
    if await directory.get_user(who.org, user_id) is None:
        raise NotFound(f"no user {user_id!r} in this org")
    return user_id


# --- system tier ---

@router.get("/skills/system", response_model=SkillLayer,
            summary="The org's overrides of the built-in system defaults")
async def get_system(who: Me, directory: Dir) -> SkillLayer:
    return await _read(directory, who.org, Tier.SYSTEM, None)


@router.put("/skills/system", response_model=SkillLayer, summary="Replace them (admin)")
async def put_system(layer: Layer, who: Me, directory: Dir, bus: SkillsApi, settings: Config
                     ) -> SkillLayer:
    require_admin(who, "change the org's system skills")
    return await _write(directory, bus, who.org, Tier.SYSTEM, None, layer, settings)


@router.delete("/skills/system", status_code=status.HTTP_204_NO_CONTENT,
               summary="Back to the built-in defaults (admin)")
async def delete_system(who: Me, directory: Dir, bus: SkillsApi) -> Response:
    require_admin(who, "change the org's system skills")
    return await _delete(directory, bus, who.org, Tier.SYSTEM, None)


# --- user tier ---

@router.get("/skills/users/{user_id}", response_model=SkillLayer,
            summary="A user's defaults (the user or an admin)")
async def get_user_layer(user_id: Id, who: Me, directory: Dir) -> SkillLayer:
    await _user(directory, who, user_id, "read these skills")
    return await _read(directory, who.org, Tier.USER, user_id)


@router.put("/skills/users/{user_id}", response_model=SkillLayer,
            summary="Replace a user's defaults (the user or an admin)")
async def put_user_layer(user_id: Id, layer: Layer, who: Me, directory: Dir, bus: SkillsApi,
                         settings: Config) -> SkillLayer:
    await _user(directory, who, user_id, "change these skills")
    return await _write(directory, bus, who.org, Tier.USER, user_id, layer, settings)


@router.delete("/skills/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a user's defaults (the user or an admin)")
async def delete_user_layer(user_id: Id, who: Me, directory: Dir, bus: SkillsApi) -> Response:
    await _user(directory, who, user_id, "change these skills")
    return await _delete(directory, bus, who.org, Tier.USER, user_id)


# --- client tier ---

@router.get("/clients/{client_id}/skills", response_model=SkillLayer,
            summary="A client's overrides")
async def get_client_layer(client: AccessibleClient, who: Me, directory: Dir) -> SkillLayer:
    return await _read(directory, who.org, Tier.CLIENT, client.id)


@router.put("/clients/{client_id}/skills", response_model=SkillLayer,
            summary="Replace a client's overrides")
async def put_client_layer(layer: Layer, client: AccessibleClient, who: Me, directory: Dir,
                           bus: SkillsApi, settings: Config) -> SkillLayer:
    return await _write(directory, bus, who.org, Tier.CLIENT, client.id, layer, settings)


@router.delete("/clients/{client_id}/skills", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a client's overrides")
async def delete_client_layer(client: AccessibleClient, who: Me, directory: Dir,
                              bus: SkillsApi) -> Response:
    return await _delete(directory, bus, who.org, Tier.CLIENT, client.id)


@router.get("/clients/{client_id}/skills/resolved", response_model=Resolution,
            summary="What the assistant uses for (caller, client), with the tier that set "
                    "each value (answered by the context service)")
async def resolved(client: AccessibleClient, who: Me, bus: SkillsApi) -> Resolution:
    reply = await bus.resolve(who.org, who.user.id, client.id)
    return Resolution(user_id=who.user.id, client_id=client.id,
                      **reply.resolved.model_dump())
