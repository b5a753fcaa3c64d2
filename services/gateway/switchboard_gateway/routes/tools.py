"""The tool catalogue, for the web app's "edit before approving" form (a form per tool is
generated from `input_schema`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from switchboard_common.tools import CATALOG
from switchboard_gateway.deps import Me
from switchboard_gateway.routes.errors import COMMON

router = APIRouter(prefix="/v1", tags=["actions"], responses=COMMON)


class ToolSpec(BaseModel):
    name: str
    description: str
    risky: bool
    input_schema: dict[str, Any]
    """The arguments' JSON schema (without the model's confidence and rationale)."""


@router.get("/tools", response_model=list[ToolSpec], summary="The tools actions can use")
async def list_tools(who: Me) -> list[ToolSpec]:
    del who  # authenticated like every /v1 route; the catalogue is the same for everyone
    return [ToolSpec(name=t.name, description=t.description, risky=t.risky,
                     input_schema=t.input.model_json_schema()) for t in CATALOG.values()]
