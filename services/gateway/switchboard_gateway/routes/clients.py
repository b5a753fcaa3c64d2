"""Clients of the caller's org and who they are assigned to.

Every write publishes `skills.changed.<org>`: context caches the client record with its
resolution (name, template), so a change must reach every replica. Writes are
read-modify-write of one record; two concurrent edits of the same client keep the last."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.directory import Client
from switchboard_common.envelope import Id, new_id
from switchboard_common.memory import ForgetRequest
from switchboard_common.skills import Tier
from switchboard_common.untrusted import DisplayName
from switchboard_gateway.deps import AccessibleClient, Conversations, Dir, Me, MemoryApi, SkillsApi
from switchboard_gateway.domain.access import Principal, assignees_after, visible_clients
from switchboard_gateway.routes.errors import COMMON, CONFLICT, NOT_FOUND, field_error

router = APIRouter(prefix="/v1/clients", tags=["clients"], responses={**COMMON, **NOT_FOUND})


class NewClient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id | None = None
    """Chosen by the caller, or generated."""
    name: DisplayName
    template_id: Id | None = None


class ClientPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: DisplayName | None = None
    template_id: Id | None = None
    """`null` detaches the template; leave it out to keep the current one."""


class Assignees(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[Id] = Field(max_length=1000)


async def _check_template(directory: Dir, org: str, template_id: str | None) -> None:
    if template_id is not None and await directory.get_template(org, template_id) is None:
        raise field_error(("body", "template_id"), f"no template {template_id!r} in this org",
                          "not_found")


async def _check_users(directory: Dir, who: Principal, user_ids: list[str]) -> None:
    known = {u.id for u in await directory.list_users(who.org)}
    for i, user_id in enumerate(user_ids):
        if user_id not in known:
            raise field_error(("body", "user_ids", i), f"no user {user_id!r} in this org",
                              "not_found")


async def _save(directory: Dir, skills: SkillsApi, who: Principal, client: Client) -> Client:
    await directory.put_client(who.org, client)
    await skills.changed(who.org, Tier.CLIENT, client.id)
    return client


@router.post("", response_model=Client, status_code=status.HTTP_201_CREATED,
             responses=CONFLICT, summary="Create a client (the creator is assigned to it)")
async def create_client(body: NewClient, who: Me, directory: Dir, skills: SkillsApi
                        ) -> Client:
    await _check_template(directory, who.org, body.template_id)
    client = Client(id=body.id or new_id(), name=body.name, template_id=body.template_id,
                    assigned_users=[who.user.id])
    if not await directory.add_client(who.org, client):
        raise HTTPException(status.HTTP_409_CONFLICT, "a client with this id already exists")
    await skills.changed(who.org, Tier.CLIENT, client.id)
    return client


@router.get("", response_model=list[Client],
            summary="Clients assigned to the caller (all of the org's for an admin)")
async def list_clients(who: Me, directory: Dir) -> list[Client]:
    return visible_clients(who, await directory.list_clients(who.org))


@router.get("/{client_id}", response_model=Client, summary="One client")
async def get_client(client: AccessibleClient) -> Client:
    return client


@router.patch("/{client_id}", response_model=Client, summary="Rename, or change the template")
async def update_client(body: ClientPatch, client: AccessibleClient, who: Me, directory: Dir,
                        skills: SkillsApi) -> Client:
    changes = body.model_dump(include=body.model_fields_set)
    if changes.get("name", "") is None:
        raise field_error(("body", "name"), "may not be null", "missing")
    if "template_id" in changes:
        await _check_template(directory, who.org, changes["template_id"])
    return await _save(directory, skills, who, client.model_copy(update=changes))


@router.delete("/{client_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a client with its skills, conversations and usage")
async def delete_client(client: AccessibleClient, who: Me, directory: Dir,
                        conversations: Conversations, skills: SkillsApi,
                        memory: MemoryApi) -> Response:
    # Memory first: if memory_indexer cannot forget now (503), nothing is deleted and the
    # caller can retry; the client must not vanish while its vectors stay searchable.
    await memory.forget(ForgetRequest(org_id=who.org, client_id=client.id, scope="client",
                                      requested_by=who.user.id))
    await directory.delete_client(who.org, client.id)
    await conversations.forget_client(who.org, client.id)
    await skills.changed(who.org, Tier.CLIENT, client.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{client_id}/assignees", response_model=Client,
            summary="Replace who the client is assigned to (every user must exist)")
async def set_assignees(body: Assignees, client: AccessibleClient, who: Me, directory: Dir,
                        skills: SkillsApi) -> Client:
    await _check_users(directory, who, body.user_ids)
    assigned = assignees_after([], add=body.user_ids)
    return await _save(directory, skills, who, client.model_copy(
        update={"assigned_users": assigned}))


@router.post("/{client_id}/assignees/{user_id}", response_model=Client,
             summary="Assign one more user")
async def add_assignee(user_id: Id, client: AccessibleClient, who: Me, directory: Dir,
                       skills: SkillsApi) -> Client:
    if await directory.get_user(who.org, user_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id!r} in this org")
    assigned = assignees_after(client.assigned_users, add=[user_id])
    return await _save(directory, skills, who, client.model_copy(
        update={"assigned_users": assigned}))


@router.delete("/{client_id}/assignees/{user_id}", response_model=Client,
               summary="Unassign one user")
async def remove_assignee(user_id: Id, client: AccessibleClient, who: Me, directory: Dir,
                          skills: SkillsApi) -> Client:
    assigned = assignees_after(client.assigned_users, remove=[user_id])
    return await _save(directory, skills, who, client.model_copy(
        update={"assigned_users": assigned}))
