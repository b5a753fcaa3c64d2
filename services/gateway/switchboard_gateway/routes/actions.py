"""Actions and approvals over REST (see docs/actions.md): pending actions per client, deciding
one or many, undoing an executed one, the audit log, and what the mail and task tools
stored."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.actions import ActionRecord, AuditEntry, DecideReply
from switchboard_common.envelope import Id
from switchboard_common.errors import ErrorCode
from switchboard_gateway.deps import AccessibleClient, Me
from switchboard_gateway.handlers.actions import Actions
from switchboard_gateway.routes.errors import COMMON, NOT_FOUND, ErrorBody
from switchboard_gateway.routes.paging import Offset

router = APIRouter(prefix="/v1", tags=["actions"], responses={**COMMON, **NOT_FOUND})

_STATUS = {ErrorCode.UNKNOWN_ACTION: 404, ErrorCode.FORBIDDEN: 403,
           ErrorCode.ACTION_ALREADY_DECIDED: 409, ErrorCode.ACTION_EXPIRED: 410,
           ErrorCode.INVALID_ARGUMENTS: 422, ErrorCode.UNAVAILABLE: 503,
           ErrorCode.ACTION_NOT_UNDOABLE: 409}
DECIDE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "already decided (`action_already_decided`)"},
    410: {"model": ErrorBody, "description": "expired before anyone decided"},
}


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    arguments: dict[str, Any] | None = None
    """Approve with these arguments instead of the proposed ones (validated again)."""
    reason: str = Field("", max_length=500)


class UndoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


class BatchItem(DecisionIn):
    action_id: Id


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decisions: list[BatchItem] = Field(min_length=1, max_length=100)


class BatchOutcome(BaseModel):
    action_id: str
    ok: bool
    status_code: int
    code: ErrorCode | None = None
    message: str = ""
    record: ActionRecord | None = None


@router.get("/clients/{client_id}/actions", response_model=list[ActionRecord],
            summary="A client's actions: pending approvals (default) or all recent ones")
async def list_actions(client: AccessibleClient, me: Me, actions: Actions,
                       status_filter: Literal["pending", "all"] = Query("pending",
                                                                        alias="status"),
                       limit: int = Query(100, ge=1, le=500)) -> list[ActionRecord]:
    if status_filter == "pending":
        return await actions.store.pending(me.org, client.id, limit)
    return await actions.store.recent(me.org, client.id, limit)


@router.get("/actions/{action_id}", response_model=ActionRecord, summary="One action")
async def get_action(action_id: Id, me: Me, actions: Actions) -> ActionRecord:
    record = await actions.accessible(me, action_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such action")
    return record


@router.post("/actions/{action_id}/decision", response_model=ActionRecord,
             responses=DECIDE_ERRORS,
             summary="Approve (optionally with edited arguments) or reject a pending action")
async def decide(action_id: Id, body: DecisionIn, me: Me, actions: Actions) -> ActionRecord:
    reply = await actions.decide(me, action_id, body.decision == "approve", body.arguments,
                                 body.reason)
    if not reply.ok or reply.record is None:
        raise HTTPException(_status_of(reply), reply.message)
    return reply.record


@router.post("/actions/{action_id}/undo", response_model=ActionRecord,
             responses={409: {"model": ErrorBody, "description":
                              "not executed, or its tool cannot be undone "
                              "(`action_not_undoable`)"}},
             summary="Revert an executed action (a created calendar event or task is "
                     "deleted, a saved draft removed); it becomes `undone`")
async def undo(action_id: Id, me: Me, actions: Actions, body: UndoIn | None = None
               ) -> ActionRecord:
    reply = await actions.undo(me, action_id, body.reason if body else "")
    if not reply.ok or reply.record is None:
        raise HTTPException(_status_of(reply), reply.message)
    return reply.record


@router.post("/actions/decisions", response_model=list[BatchOutcome],
             summary="Decide several actions; each succeeds or fails on its own")
async def decide_many(body: BatchIn, me: Me, actions: Actions) -> list[BatchOutcome]:
    out = []
    for item in body.decisions:
        reply = await actions.decide(me, item.action_id, item.decision == "approve",
                                     item.arguments, item.reason)
        out.append(BatchOutcome(action_id=item.action_id, ok=reply.ok,
                                status_code=200 if reply.ok else _status_of(reply),
                                code=reply.code, message=reply.message, record=reply.record))
    return out


@router.get("/clients/{client_id}/audit", response_model=list[AuditEntry],
            summary="The client's audit log, newest first")
async def audit(client: AccessibleClient, me: Me, actions: Actions,
                offset: Offset = 0, limit: int = Query(100, ge=1, le=1000)
                ) -> list[AuditEntry]:
    return await actions.store.audit_log(me.org, client.id, offset, limit)


@router.get("/clients/{client_id}/drafts", summary="E-mail drafts the assistant saved")
async def drafts(client: AccessibleClient, me: Me, actions: Actions) -> list[dict[str, Any]]:
    return await actions.store.drafts(me.org, client.id)


@router.get("/clients/{client_id}/tasks", summary="The client's task list")
async def tasks(client: AccessibleClient, me: Me, actions: Actions) -> list[dict[str, Any]]:
    return await actions.store.tasks(me.org, client.id)


def _status_of(reply: DecideReply) -> int:
    return _STATUS.get(reply.code, 400) if reply.code else 400
