"""REST view of turns the caller started."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from switchboard_common.envelope import Id
from switchboard_gateway.deps import Me, Store
from switchboard_gateway.routes.errors import UNAUTHORIZED

router = APIRouter(prefix="/v1", tags=["turns"])


class TurnInfo(BaseModel):
    turn_id: str
    client_id: str
    conversation_id: str
    deadline_at: datetime
    events_subject: str
    """Where the turn's stream events are published (and kept for resume)."""


@router.get("/turns/{turn_id}", response_model=TurnInfo,
            responses={**UNAUTHORIZED, 404: {"description": "no such turn for this caller"}},
            summary="A turn the caller started (while the gateway remembers it)")
async def get_turn(turn_id: Id, who: Me, store: Store) -> TurnInfo:
    record = await store.get(turn_id)
    if record is None or (record.org, record.user) != (who.org, who.user.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such turn for this caller")
    return TurnInfo(turn_id=record.turn_id, client_id=record.client_id,
                    conversation_id=record.conversation_id, deadline_at=record.deadline_at,
                    events_subject=f"turns.events.{record.org}.{record.turn_id}")
