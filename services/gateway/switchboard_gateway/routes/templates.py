"""Templates: the org's reusable client configurations. Any member reads them; admins write.
A template's `skills` is the template tier of every client that uses it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from switchboard_common.directory import Template
from switchboard_common.envelope import Id, new_id
from switchboard_common.skills import Tier, validate_layer
from switchboard_gateway.deps import Config, Dir, Me, SkillsApi
from switchboard_gateway.domain.access import NotFound, require_admin
from switchboard_gateway.routes.errors import COMMON, CONFLICT, NOT_FOUND, check_models, invalid
from switchboard_gateway.settings import Settings

router = APIRouter(prefix="/v1/templates", tags=["templates"],
                   responses={**COMMON, **NOT_FOUND})


class NewTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id | None = None
    name: str = Field(min_length=1, max_length=200)
    skills: dict[str, Any] = Field(default_factory=dict)
    """A skills layer (see docs/skills.md): any subset of the skills, `null` removes a key."""


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    skills: dict[str, Any] | None = None
    """Replaces the template's skills layer whole."""


def _validate_skills(skills: dict[str, Any], settings: Settings) -> None:
    try:
        validate_layer(skills)
    except ValidationError as exc:
        raise invalid(exc, "body", "skills") from None
    check_models(skills, settings.allowed_models, "body", "skills")


async def _get(directory: Dir, org: str, template_id: str) -> Template:
    template = await directory.get_template(org, template_id)
    if template is None:
        raise NotFound(f"no template {template_id!r} in this org")
    return template


@router.post("", response_model=Template, status_code=status.HTTP_201_CREATED,
             responses=CONFLICT, summary="Create a template (admin)")
async def create_template(body: NewTemplate, who: Me, directory: Dir, settings: Config
                          ) -> Template:
    require_admin(who, "create templates")
    _validate_skills(body.skills, settings)
    template = Template(id=body.id or new_id(), name=body.name, skills=body.skills)
    if not await directory.add_template(who.org, template):
        raise HTTPException(status.HTTP_409_CONFLICT, f"template {template.id!r} exists")
    return template  # no client can use it yet: nothing cached to invalidate


@router.get("", response_model=list[Template], summary="The org's templates")
async def list_templates(who: Me, directory: Dir) -> list[Template]:
    return await directory.list_templates(who.org)


@router.get("/{template_id}", response_model=Template, summary="One template")
async def get_template(template_id: Id, who: Me, directory: Dir) -> Template:
    return await _get(directory, who.org, template_id)


@router.patch("/{template_id}", response_model=Template,
              summary="Rename, or replace the skills (admin)")
async def update_template(template_id: Id, body: TemplatePatch, who: Me, directory: Dir,
                          skills: SkillsApi, settings: Config) -> Template:
    require_admin(who, "change templates")
    template = await _get(directory, who.org, template_id)
    if body.skills is not None:
        _validate_skills(body.skills, settings)
    changes = body.model_dump(include=body.model_fields_set, exclude_none=True)
    updated = template.model_copy(update=changes)
    await directory.put_template(who.org, updated)
    await skills.changed(who.org, Tier.TEMPLATE, template_id)
    return updated


@router.delete("/{template_id}", status_code=status.HTTP_204_NO_CONTENT, responses=CONFLICT,
               summary="Delete a template no client uses (admin)")
async def delete_template(template_id: Id, who: Me, directory: Dir) -> Response:
    require_admin(who, "delete templates")
    await _get(directory, who.org, template_id)
    users = [c for c in await directory.list_clients(who.org) if c.template_id == template_id]
    if users:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"template {template_id!r} is used by {len(users)} client(s)")
    await directory.delete_template(who.org, template_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
