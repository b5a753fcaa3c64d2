"""Approvals at the edge: list an accessible client's actions, and pass a user's decisions to
the action_executor (request/reply on `actions.decide.<org>`, undo on `actions.undo.<org>`),
for REST and the WebSocket alike.

Access: an action is decided only by a user who may use its client (`domain.access`, the same
rules as every client route). Records are read from the org's own keys, so another org's
action is simply unknown. The executor owns every state change: deciding twice, deciding an
expired action or approving with invalid arguments come back as typed refusals and change
nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends
from nats.aio.client import Client as NatsClient
from starlette.requests import HTTPConnection

from switchboard_common.action_store import ActionStore
from switchboard_common.actions import (
    ActionRecord,
    DecideAction,
    DecideReply,
    UndoAction,
    action_decide_subject,
    action_undo_subject,
)
from switchboard_common.bus import NoAnswer, request_reply
from switchboard_common.credentials import Scope
from switchboard_common.directory import Directory
from switchboard_common.errors import ErrorCode
from switchboard_gateway.domain.access import AccessError, Principal, check_client
from switchboard_gateway.domain.auth import AuthMethod

log = logging.getLogger(__name__)


class ActionGate:
    def __init__(self, nc: NatsClient, store: ActionStore, directory: Directory,
                 timeout_s: float) -> None:
        self._nc = nc
        self.store = store
        self._directory = directory
        self._timeout = timeout_s

    async def refresh(self, me: Principal) -> Principal | None:
        """`me` with the user's current role (a socket lives long; a demoted or removed user
        must not keep deciding). Identity provider users are not in the directory."""
        if me.method is AuthMethod.OIDC:
            return me
        user = await self._directory.get_user(me.org, me.user.id)
        return Principal(me.org, user, me.method, me.scopes) if user else None

    async def accessible(self, me: Principal, action_id: str) -> ActionRecord | None:
        """The action if it exists in the caller's org and the caller may use its client;
        raises the access error otherwise (None: no such action)."""
        record = await self.store.get(me.org, action_id) if len(action_id) <= 64 else None
        if record is None:
            return None
        check_client(me, record.client_id, await self._directory.get_client(me.org,
                                                                             record.client_id))
        return record

    async def decide(self, me: Principal, action_id: str, approve: bool,
                     arguments: dict[str, Any] | None = None, reason: str = "") -> DecideReply:
        return await self._ask(me, action_id, lambda: DecideAction(
            org_id=me.org, action_id=action_id, user_id=me.user.id, approve=approve,
            arguments=arguments, reason=reason), action_decide_subject(me.org),
            "decisions need", "decision on")

    async def undo(self, me: Principal, action_id: str, reason: str = "") -> DecideReply:
        """Revert an executed action (the executor runs its tool's compensating operation);
        the same access rules and refusals as a decision."""
        return await self._ask(me, action_id, lambda: UndoAction(
            org_id=me.org, action_id=action_id, user_id=me.user.id, reason=reason),
            action_undo_subject(me.org), "undoing needs", "undo of")

    async def _ask(self, me: Principal, action_id: str,
                   request: Callable[[], DecideAction | UndoAction], subject: str, needs: str,
                   what: str) -> DecideReply:
        """Check the caller may act on `action_id`, then ask the executor `request()` (built
        only once the checks passed)."""
        if not me.has_scope(Scope.CHAT):
            return DecideReply(ok=False, code=ErrorCode.FORBIDDEN,
                               message=f"this API key lacks the 'chat' scope {needs}")
        try:
            record = await self.accessible(me, action_id)
        except AccessError as exc:
            return DecideReply(ok=False, code=ErrorCode.FORBIDDEN, message=str(exc))
        if record is None:
            return DecideReply(ok=False, code=ErrorCode.UNKNOWN_ACTION, message="no such action")
        try:
            return await request_reply(self._nc, subject, request(), DecideReply, self._timeout)
        except NoAnswer as exc:
            log.warning("%s %s not answered: %s", what, action_id, exc)
            return DecideReply(ok=False, code=ErrorCode.UNAVAILABLE,
                               message="the action executor did not answer; retry")


def _actions(conn: HTTPConnection) -> ActionGate:
    gate: ActionGate = conn.app.state.actions
    return gate


Actions = Annotated[ActionGate, Depends(_actions)]
