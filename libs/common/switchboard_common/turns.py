"""Turn subjects: the turn command, the finished-turn event and the per-turn client stream.

| subject                              | kind                 | producer -> consumer             |
|--------------------------------------|----------------------|----------------------------------|
| turns.requested.<org>                | command, JetStream   | gateway -> context               |
| turns.completed.<org>                | event, JetStream     | context -> memory_indexer, ...   |
| turns.events.<org>.<turn>            | core NATS, also kept | llm_stream, context -> gateway   |
| turns.cancel.<org>                   | core NATS            | gateway -> llm_stream            |
| turns.observed.<org>.<user>          | core NATS            | gateway -> gateway (other tabs)  |

`turns.events.*` payloads are exactly the server->client WebSocket frames, so the gateway
forwards them without re-encoding. They are published on core NATS (fire-and-forget) and
captured by the memory-backed SB_TURN_EVENTS stream (bounded, expiring) so a client that
reconnects can resume after its last `seq`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from switchboard_common.envelope import SCHEMA_VERSION, Envelope, Id
from switchboard_common.errors import ErrorCode

DEFAULT_CONVERSATION = "main"


def turn_requested_subject(org: str) -> str:
    return f"turns.requested.{org}"


def turn_completed_subject(org: str) -> str:
    return f"turns.completed.{org}"


def turn_events_subject(org: str, turn: str) -> str:
    return f"turns.events.{org}.{turn}"


def turn_cancel_subject(org: str) -> str:
    return f"turns.cancel.{org}"


def turn_observed_subject(org: str, user: str) -> str:
    return f"turns.observed.{org}.{user}"


def turn_msg_id(org: str, user: str, idempotency_key: str) -> str:
    """Nats-Msg-Id of a turn request: the same client key gives the same JetStream id."""
    return f"turn:{org}:{user}:{idempotency_key}"


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


class Background(BaseModel):
    """What started a background turn (no user message): the ingested event and the trigger
    rule it matched. The event is untrusted: the turn is tainted by it from the start."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    source: str
    rule: str
    tools: list[str] | None = None
    """The rule's tool list (within the enabled tools); None: every enabled tool."""

    @property
    def taint(self) -> str:
        return f"event:{self.source}:{self.event_id}"[:120]


class TurnRequest(Envelope):
    """Command: process one user message (or, with `background`, react to an ingested event).
    Owned by the context service."""

    turn_id: Id
    user_id: Id
    client_id: Id
    conversation_id: Id = DEFAULT_CONVERSATION
    text: str
    idempotency_key: str
    deadline_at: datetime
    background: Background | None = None


class TurnCompleted(Envelope):
    """Event: a turn finished and was appended to the conversation."""

    turn_id: Id
    user_id: Id
    client_id: Id
    conversation_id: Id
    user_text: str
    assistant_text: str
    model: str
    usage: Usage


class TurnCancel(Envelope):
    """Event: the user pressed stop. Whoever is generating the turn's text stops, keeps what
    was streamed and finishes the turn with `stop_reason: "cancelled"`. Fire-and-forget: a
    cancel that arrives after the turn ended changes nothing."""

    turn_id: Id


class TurnObserved(BaseModel):
    """A turn one of the user's sockets started, announced to the user's other sockets that
    watch its conversation (a second tab follows it live). Also the WebSocket frame those
    sockets get before the turn's events."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["turn_observed"] = "turn_observed"
    v: int = SCHEMA_VERSION
    org_id: str
    turn_id: Id
    user_id: Id
    client_id: Id
    conversation_id: Id
    text: str
    deadline_at: datetime


# ---- per-turn client stream (also the WebSocket server->client frames) ----


class _StreamEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    v: int = SCHEMA_VERSION
    org_id: str
    turn_id: str


class TurnStarted(_StreamEvent):
    type: Literal["turn_started"] = "turn_started"
    client_id: str
    conversation_id: str
    idempotency_key: str
    duplicate: bool = False


class Delta(_StreamEvent):
    """One piece of streamed text. `seq` grows by one per event within a turn, across
    attempts, so a reconnecting client resumes with `last_seq` and never sees a gap.

    Stream events carry org and schema version but not the trace context: on the token path
    that would add ~70 bytes to every token; the turn's trace travels with its durable
    messages (TurnRequest, ModelRequest, ModelResult), which these events belong to."""

    type: Literal["delta"] = "delta"
    seq: int
    text: str


class TurnQueued(_StreamEvent):
    """The model is busy with other requests (the local model answers one at a time):
    `position` requests are ahead of this turn. Repeated every few seconds while the wait
    lasts; then the answer streams as usual. `seq` 0: it holds no place in the turn's text."""

    type: Literal["queued"] = "queued"
    seq: int = 0
    position: int


class TurnRetry(_StreamEvent):
    """The turn is being generated again (crash or transient provider failure):
    the client must discard the partial text it has shown for this turn."""

    type: Literal["turn_retry"] = "turn_retry"
    seq: int
    attempt: int
    reason: str


class TurnAction(BaseModel):
    """One action of a turn, as its terminal frame lists it."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    tool: str
    status: str
    """The action's status when the turn ended (`pending`, `executed`, `needs_input`, ...)."""
    outcome: Literal["proposed", "ran", "asked", "refused"]
    """proposed: awaits approval (or was decided); ran: executed or failed; asked: the
    assistant asked for details instead; refused: never runnable."""


class TurnDone(_StreamEvent):
    type: Literal["turn_completed"] = "turn_completed"
    seq: int
    model: str
    provider: str
    stop_reason: str | None
    usage: Usage
    text: str
    actions: list[TurnAction] = []
    """Every action the turn proposed, ran or asked about, in order; empty when it chose
    not to act."""
    meta: dict[str, str] = {}
    """How the turn was served: `memory` (`used`, `none`, `not_needed`, or `skipped:<why>`
    when the turn went on without its memory) and `timezone` (of the dates in the prompt)."""


class TurnError(_StreamEvent):
    type: Literal["error"] = "error"
    seq: int = 0
    code: ErrorCode
    message: str
    retryable: bool = False


StreamEvent = Annotated[
    TurnStarted | TurnQueued | Delta | TurnRetry | TurnDone | TurnError,
    Field(discriminator="type")
]
STREAM_EVENT: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)
TERMINAL_TYPES = frozenset({"turn_completed", "error"})
