"""The caller's own conversations with a client and their turns, paginated. Conversations are
per (user, client): a colleague assigned to the same client has their own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.conversations import TurnRecord
from switchboard_common.envelope import Id
from switchboard_gateway.deps import AccessibleClient, Conversations, Me
from switchboard_gateway.domain.access import NotFound
from switchboard_gateway.routes.errors import COMMON, NOT_FOUND
from switchboard_gateway.routes.paging import Offset

router = APIRouter(prefix="/v1/clients/{client_id}/conversations", tags=["conversations"],
                   responses={**COMMON, **NOT_FOUND})

T = TypeVar("T")
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    next_offset: int | None
    """Where the next page starts; null on the last page."""


def _page(items: list[T], total: int, offset: int) -> Page[T]:
    end = offset + len(items)
    return Page[T](items=items, total=total, offset=offset,
                   next_offset=end if end < total and items else None)


class ConversationInfo(BaseModel):
    conversation_id: str
    last_activity_at: datetime
    title: str = ""
    """The title the user gave it ('' until renamed)."""


class ConversationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)


@router.get("", response_model=Page[ConversationInfo],
            summary="The caller's conversations with this client, most recent first")
async def list_conversations(client: AccessibleClient, who: Me, store: Conversations,
                             offset: Offset = 0, limit: Limit = 20) -> Page[ConversationInfo]:
    rows = await store.conversations(who.org, who.user.id, client.id, offset, limit)
    total = await store.count_conversations(who.org, who.user.id, client.id)
    titles = await store.titles(who.org, who.user.id, client.id, [c for c, _ in rows])
    items = [ConversationInfo(conversation_id=c, title=title,
                              last_activity_at=datetime.fromtimestamp(t, UTC))
             for (c, t), title in zip(rows, titles, strict=True)]
    return _page(items, total, offset)


@router.patch("/{conversation_id}", response_model=ConversationPatch,
              summary="Rename one of the caller's conversations (a new one may be named first)")
async def rename_conversation(conversation_id: Id, body: ConversationPatch,
                              client: AccessibleClient, who: Me, store: Conversations
                              ) -> ConversationPatch:
    await store.set_title(who.org, who.user.id, client.id, conversation_id, body.title)
    return body


@router.get("/{conversation_id}/turns", response_model=Page[TurnRecord],
            summary="Turns of one conversation, oldest first")
async def list_turns(conversation_id: Id, client: AccessibleClient, who: Me,
                     store: Conversations, offset: Offset = 0, limit: Limit = 20
                     ) -> Page[TurnRecord]:
    turns, total = await store.turns(who.org, who.user.id, client.id, conversation_id,
                                     offset, limit)
    if total == 0:
        raise NotFound(f"no conversation {conversation_id!r} with this client")
    return _page(turns, total, offset)
