"""Memory subjects: external events to index, searches over what is indexed, and forgetting.

| subject                      | kind                 | producer -> consumer                     |
|------------------------------|----------------------|------------------------------------------|
| events.ingest.<org>.<client> | event, JetStream     | other systems, gateway -> memory_indexer |
| turns.completed.<org>        | event, JetStream     | context -> memory_indexer (turns.py)     |
| memory.search.<org>          | request/reply, core  | context -> memory_indexer                |
| memory.forget.<org>          | request/reply, core  | gateway/admin -> memory_indexer          |
| memory.forgotten.<org>       | event, core NATS     | memory_indexer -> context                |
| dlq.SB_INGEST.memory-ingest  | JetStream (SB_DLQ)   | bad or undeliverable ingest events       |
| dlq.SB_HISTORY.memory-turns  | JetStream (SB_DLQ)   | bad or undeliverable finished turns      |

Dead letters keep the original bytes and headers; `Sb-Dlq-Reason` says why (`invalid_event`:
the body failed validation, `MAX_DELIVERIES`: indexing kept failing) and `Sb-Dlq-Error` carries
the validation error's field paths and types (never the content). A malformed event is
dead-lettered on its first delivery and acked, so it never delays the events behind it.

Search and forget are request/reply because the caller waits for the answer; a timeout is the
caller's to retry (both are idempotent). Forgetting deletes indexed vectors and text; the
conversation transcript belongs to the context service, which listens on `memory.forgotten.*`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from switchboard_common.envelope import Envelope, Id, utcnow

SourceType = Literal["document", "email", "calendar", "note", "crm", "turn"]
SearchMode = Literal["hybrid", "dense", "text"]
Visibility = Literal["client", "private"]
MemoryKind = Literal["event", "user", "assistant"]
"""`event`: ingested from another system; `user`: what the user typed in a turn; `assistant`:
what the assistant answered (ranked below the other two: it is not a source of facts)."""

_ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+=-]{0,127}$")


def _check_item_id(value: str) -> str:
    if not _ITEM_ID.match(value):
        raise ValueError("must be 1-128 characters: a letter or digit, then letters, digits "
                         "or any of _ . : @ + = -")
    return value


ItemId = Annotated[str, AfterValidator(_check_item_id)]
"""The id of a memory item (an event's own id, or a turn id). Wider than `Id` because producers
bring their own ids ("D1:3", "msg.4711@example.com"): it never travels as a subject token, only
inside the chunk id `<org>:<client>:<kind>:<item id>:<chunk>` (org, client and kind hold no ':'
and the chunk number is last, so the id still parses) and as an escaped TAG value. No '/' (it
is a REST path segment) and no whitespace."""

MAX_QUERY_CHARS = 2000
MAX_K = 50
MAX_CONTEXT_CHARS = 2000


def ingest_subject(org: str, client: str) -> str:
    return f"events.ingest.{org}.{client}"


def ingest_msg_id(org: str, client: str, event_id: str) -> str:
    """Nats-Msg-Id for an ingest event: a producer that re-sends one event is deduplicated by
    the stream (and a duplicate that gets through is still a no-op for the indexer)."""
    return f"ingest:{org}:{client}:{event_id}"


def search_subject(org: str) -> str:
    return f"memory.search.{org}"


def forget_subject(org: str) -> str:
    return f"memory.forget.{org}"


def forgotten_subject(org: str) -> str:
    return f"memory.forgotten.{org}"


class IngestEvent(Envelope):
    """An external event that becomes per-client memory. `event_id` is the producer's own id:
    indexing the same id twice is a no-op (the same id with new text replaces the old text).

    `visibility="private"` makes the item visible only to `user_id` (e.g. a VA's own note);
    the default `client` makes it visible to every user of the org working for that client."""

    event_id: ItemId
    client_id: Id
    user_id: Id | None = None
    visibility: Visibility = "client"
    source: SourceType
    title: str = ""
    # Bounded like the REST upload: a producer publishing straight to NATS gets the same limit.
    text: str = Field(min_length=1, max_length=200_000)
    occurred_at: datetime = Field(default_factory=utcnow)
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The producer's own fields; returned unchanged with every search hit of this event."""
    context: str = Field("", max_length=MAX_CONTEXT_CHARS)
    """What came just before this event in its thread (the previous turn of a conversation):
    the event gets a second vector, the mean of its own and its context's, so a reply
    ("Lisbon, last week!") is found by the question it answers. Never returned and never
    matched by keyword. Left empty in a REST upload, the gateway fills it (memory_threads.py)."""
    batch_id: Id | None = None
    """The REST upload batch this event came in (`GET /v1/clients/<c>/ingest/<batch>` follows
    it); None for events published straight to the bus."""

    @model_validator(mode="after")
    def _private_needs_user(self) -> IngestEvent:
        if self.visibility == "private" and self.user_id is None:
            raise ValueError("a private event needs user_id")
        return self


class SearchRequest(Envelope):
    """Find what one client's memory holds about `query`. `org_id` must equal the subject's org.

    `user_id` adds that user's private items to the client's shared ones. Filters: `sources`,
    `kinds`, and `since`/`until` on the item's date (inclusive). `recency_half_life_days`
    (optional) boosts newer items: each fused score is multiplied by `1 + 2^(-age/half_life)`,
    so an item from today counts up to twice an equally relevant very old one."""

    client_id: Id
    user_id: Id | None = None
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(8, ge=1, le=MAX_K)
    mode: SearchMode = "hybrid"
    sources: list[SourceType] | None = None
    kinds: list[MemoryKind] | None = None
    since: datetime | None = None
    until: datetime | None = None
    recency_half_life_days: float | None = Field(None, gt=0)


class SearchHit(BaseModel):
    """One retrieved chunk, with what an answer needs to cite it."""

    model_config = ConfigDict(frozen=True)

    id: str
    """The chunk's document id (stable across re-indexing)."""
    item_id: str
    """The event id or turn id the chunk came from."""
    source: SourceType
    kind: MemoryKind = "event"
    title: str = ""
    text: str
    occurred_at: datetime
    """When it happened: the event's `occurred_at`, or when the turn was created."""
    indexed_at: datetime | None = None
    """When memory_indexer stored this chunk."""
    conversation_id: str | None = None
    chunk: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The producer's metadata of the event (empty for turns)."""
    score: float
    dense_rank: int | None = None
    text_rank: int | None = None


class SearchResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    hits: list[SearchHit] = Field(default_factory=list)
    model: str = ""
    took_ms: float = 0.0
    error: str | None = None
    """Set (with no hits) when the request was refused: `invalid_request`, `org_mismatch`,
    `internal_error`."""


ForgetScope = Literal["client", "item", "source", "conversation"]


class ForgetRequest(Envelope):
    """Command: delete memory. `client`: everything of that client; `item`: one event or turn
    (`item_id`); `source`: every item of one source type (`source`); `conversation`: every turn of
    one conversation (`conversation_id`). Idempotent: forgetting twice deletes nothing more."""

    client_id: Id
    scope: ForgetScope
    item_id: ItemId | None = None
    source: SourceType | None = None
    conversation_id: Id | None = None
    requested_by: Id | None = None

    @model_validator(mode="after")
    def _scope_needs_target(self) -> ForgetRequest:
        needed = {"item": self.item_id, "source": self.source,
                  "conversation": self.conversation_id}
        if self.scope in needed and needed[self.scope] is None:
            raise ValueError(f"scope {self.scope!r} needs its target field")
        return self


class ForgetResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    deleted_chunks: int = 0
    ingest_purged: bool = False
    """scope `client`: the client's raw events were also purged from SB_INGEST."""
    error: str | None = None


class MemoryForgotten(Envelope):
    """Event after a forget: the context service deletes the matching conversation data
    (`scope` client -> every conversation of the client; conversation -> that one)."""

    client_id: Id
    scope: ForgetScope
    item_id: ItemId | None = None
    source: SourceType | None = None
    conversation_id: Id | None = None
    forgotten_at: datetime = Field(default_factory=utcnow)
