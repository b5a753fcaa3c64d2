"""Triggers (list, add, dry run) and the autonomy learning of a client (decision history,
calibration, suggestions accepted in one click). Rules and autonomy are skills: writes go to
the client tier through the same validation and `skills.changed` announcement as
`PUT /v1/clients/<c>/skills`, so whoever may change the client's skills may do these."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from switchboard_common.envelope import Id, utcnow
from switchboard_common.learning import ToolLearning, learning_of, suggest
from switchboard_common.memory import IngestEvent
from switchboard_common.skills import Tier, merge
from switchboard_common.triggers import (
    TriggerMatcher,
    TriggerRule,
    TriggerTest,
    TriggerTestResult,
)
from switchboard_gateway.deps import AccessibleClient, Config, Dir, Learning, Me, SkillsApi
from switchboard_gateway.routes.errors import COMMON, CONFLICT, NOT_FOUND
from switchboard_gateway.routes.skills import SkillLayer, _write

router = APIRouter(prefix="/v1/clients/{client_id}", tags=["proactive"],
                   responses={**COMMON, **NOT_FOUND})


class Triggers(BaseModel):
    rules: list[TriggerRule]
    tier: str
    """The skill tier that set the resolved list (`system`: none set)."""


@router.get("/triggers", response_model=Triggers,
            summary="The trigger rules resolved for (caller, client), in matching order")
async def list_triggers(client: AccessibleClient, who: Me, bus: SkillsApi) -> Triggers:
    reply = await bus.resolve(who.org, who.user.id, client.id)
    return Triggers(rules=reply.resolved.skills.triggers,
                    tier=reply.resolved.provenance.get("triggers", Tier.SYSTEM))


@router.post("/triggers", response_model=SkillLayer, status_code=status.HTTP_201_CREATED,
             responses=CONFLICT,
             summary="Add a rule at the end of the client's list (the client tier then holds "
                     "the whole resolved list: lists replace, they do not merge)")
async def add_trigger(rule: TriggerRule, client: AccessibleClient, who: Me, directory: Dir,
                      bus: SkillsApi, settings: Config) -> SkillLayer:
    reply = await bus.resolve(who.org, who.user.id, client.id)
    rules = reply.resolved.skills.triggers
    if any(r.name == rule.name for r in rules):
        raise HTTPException(status.HTTP_409_CONFLICT, f"a rule named {rule.name!r} exists")
    layer = await directory.get_layer(who.org, Tier.CLIENT, client.id) or {}
    layer = {**layer, "triggers": [r.model_dump(mode="json") for r in (*rules, rule)]}
    return await _write(directory, bus, who.org, Tier.CLIENT, client.id, layer, settings)


@router.post("/triggers/test", response_model=TriggerTestResult,
             summary="Dry run: would this event start a background turn? (no model call, "
                     "nothing stored)")
async def test_trigger(body: TriggerTest, client: AccessibleClient, who: Me,
                       bus: SkillsApi) -> TriggerTestResult:
    resolved = (await bus.resolve(who.org, who.user.id, client.id)).resolved
    event = IngestEvent(org_id=who.org, event_id="dry-run", client_id=client.id,
                        source=body.source, title=body.title, text=body.text,
                        metadata=dict(body.metadata))
    # Built per dry run (a fresh resolution), so not kept in the matcher cache.
    found = TriggerMatcher(resolved.skills.triggers).match(event)
    quiet = resolved.skills.quiet_hours
    return TriggerTestResult(
        matched=found is not None, rule=found[1] if found else None,
        index=found[0] if found else None,
        tier=resolved.provenance.get("triggers", Tier.SYSTEM),
        quiet_until=quiet.resume_at(utcnow(), resolved.skills.timezone)
        if found is not None and quiet is not None else None)


@router.get("/autonomy/learning", response_model=list[ToolLearning],
            summary="Decision history per tool, what calibration makes of a few raw "
                    "confidences, and a suggested autonomy change where the history shows one")
async def learning(client: AccessibleClient, who: Me, bus: SkillsApi,
                   store: Learning) -> list[ToolLearning]:
    autonomy = (await bus.resolve(who.org, who.user.id, client.id)).resolved.skills.autonomy
    return [learning_of(h, autonomy, client.name)
            for h in await store.all(who.org, client.id)]


@router.post("/autonomy/suggestions/{tool}/accept", response_model=SkillLayer,
             responses=CONFLICT,
             summary="Apply the suggestion shown for this tool (one click); 409 when the "
                     "history no longer suggests it")
async def accept(tool: Id, client: AccessibleClient, who: Me, directory: Dir,
                 bus: SkillsApi, settings: Config, store: Learning) -> SkillLayer:
    history = await store.history(who.org, client.id, tool)
    autonomy = (await bus.resolve(who.org, who.user.id, client.id)).resolved.skills.autonomy
    found = suggest(history, autonomy, client.name) if history is not None else None
    if found is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"no autonomy suggestion for {tool}")
    layer: dict[str, Any] = await directory.get_layer(who.org, Tier.CLIENT, client.id) or {}
    return await _write(directory, bus, who.org, Tier.CLIENT, client.id,
                        merge(layer, found.patch), settings)
