"""The agency inbox: pending approvals across every client the caller can reach, and a feed of
what the assistant did on its own or turned into a question. One Valkey read per client: a
user reaches tens of clients, not thousands (an admin of a large org pages with `limit`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from switchboard_common.actions import ActionRecord
from switchboard_common.envelope import Id
from switchboard_gateway.deps import Dir, Me
from switchboard_gateway.domain.access import check_client, visible_clients
from switchboard_gateway.handlers.actions import Actions
from switchboard_gateway.routes.errors import COMMON, NOT_FOUND

router = APIRouter(prefix="/v1", tags=["actions"], responses={**COMMON, **NOT_FOUND})


def ran_alone_or_asked(record: ActionRecord) -> bool:
    """Executed (or failed) without anyone deciding, or turned into a question."""
    if record.status == "needs_input":
        return True
    # The executor records a policy execution as approved `by="policy"`: alone all the same.
    alone = record.decision is None or record.decision.by == "policy"
    return alone and record.status in ("executed", "failed", "approved")


@router.get("/inbox", response_model=list[ActionRecord],
            summary="Pending approvals (kind=pending) or what ran alone and questions asked "
                    "(kind=feed), across the caller's clients or one, newest first")
async def inbox(me: Me, directory: Dir, actions: Actions,
                kind: Literal["pending", "feed"] = "pending",
                client_id: Id | None = None,
                limit: int = Query(200, ge=1, le=1000)) -> list[ActionRecord]:
    if client_id is not None:
        clients = [check_client(me, client_id, await directory.get_client(me.org, client_id))]
    else:
        clients = visible_clients(me, await directory.list_clients(me.org))
    found: list[ActionRecord] = []
    for client in clients:
        if kind == "pending":
            found += [a for a in await actions.store.pending(me.org, client.id, limit)
                      if a.status == "pending"]
        else:
            found += [a for a in await actions.store.recent(me.org, client.id, limit)
                      if ran_alone_or_asked(a)]
    found.sort(key=lambda a: a.created_at, reverse=True)
    return found[:limit]
