"""The client side of the WebSocket protocol (docs/protocol.md): parsing and validating what a
client sends, and the error frames the gateway itself writes. Pure: no I/O.

Server->client turn events are not modelled here: they are `switchboard_common.turns` stream
events, forwarded from the bus as raw JSON text (`ServerFrame` lists them all for the web app's
generated types)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from switchboard_common.actions import ActionDecided, ActionPending, ActionResultFrame
from switchboard_common.envelope import SCHEMA_VERSION, Id
from switchboard_common.errors import ErrorCode
from switchboard_common.turns import (
    Delta,
    TurnDone,
    TurnObserved,
    TurnQueued,
    TurnRetry,
    TurnStarted,
)
from switchboard_gateway.domain.bounds import too_deep

# Room for the JSON around `text` (ids, keys, escapes) before a frame is refused unparsed.
_FRAME_OVERHEAD_BYTES = 4096


class _ClientMessage(BaseModel):
    # Unknown fields are ignored so a newer client still talks to an older gateway.
    model_config = ConfigDict(frozen=True, extra="ignore")


class UserMessage(_ClientMessage):
    type: Literal["user_message"]
    client_id: Id
    conversation_id: Id | None = None
    text: str = Field(min_length=1)
    idempotency_key: Id
    """Chosen by the client per message; re-sending with the same key never makes a 2nd turn."""


class Resume(_ClientMessage):
    type: Literal["resume"]
    turn_id: Id
    last_seq: int = Field(0, ge=0)
    """The highest `seq` the client has; events after it are replayed, then streamed live."""


class ActionDecision(_ClientMessage):
    """Approve (optionally with edited arguments) or reject one pending action."""

    type: Literal["action_decision"]
    action_id: Id
    decision: Literal["approve", "reject"]
    arguments: dict[str, Any] | None = None
    reason: str = Field("", max_length=500)


class ActionDecisions(_ClientMessage):
    """Several decisions at once (each succeeds or fails on its own)."""

    type: Literal["action_decisions"]
    decisions: list[ActionDecision] = Field(min_length=1, max_length=100)


class Cancel(_ClientMessage):
    """Stop generating a turn this user started: the partial answer is kept and marked."""

    type: Literal["cancel"]
    turn_id: Id


class Watch(_ClientMessage):
    """Follow the user's turns in one conversation live, whichever socket (another tab, another
    device) starts them. A socket watches one conversation at a time; a new `watch` replaces
    the previous one, `conversation_id: null` stops watching."""

    type: Literal["watch"]
    client_id: Id
    conversation_id: Id | None = None


ClientMessage = Annotated[UserMessage | Resume | ActionDecision | ActionDecisions | Cancel
                          | Watch, Field(discriminator="type")]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class ErrorFrame(BaseModel):
    """An `error` the gateway writes itself: bad input, an unknown turn, a timeout, a
    dependency being down. Same shape as `turns.TurnError`, but `turn_id` may be null."""

    model_config = ConfigDict(frozen=True)

    type: Literal["error"] = "error"
    v: int = SCHEMA_VERSION
    org_id: str | None = None
    turn_id: str | None = None
    seq: int = 0
    code: ErrorCode
    message: str
    retryable: bool = False
    idempotency_key: str | None = None
    """Set when the error answers a `user_message` whose key could be read."""
    action_id: str | None = None
    """Set when the error answers an `action_decision` (which action it refuses)."""
    retry_after_s: float | None = None
    """With `rate_limited` and `quota_exceeded`: when trying again can succeed."""


class BudgetWarningFrame(BaseModel):
    """Sent before a turn starts once the org has used `budget_warning_fraction` of its
    monthly token budget: the turn still runs; at the budget, turns get `quota_exceeded`."""

    model_config = ConfigDict(frozen=True)

    type: Literal["budget_warning"] = "budget_warning"
    v: int = SCHEMA_VERSION
    org_id: str
    idempotency_key: str
    used_tokens: int
    budget_tokens: int
    message: str


ServerFrame = (TurnStarted | TurnQueued | Delta | TurnRetry | TurnDone | ErrorFrame
               | ActionPending | ActionResultFrame | ActionDecided | TurnObserved)
"""Every frame the server writes (for the web app's generated types; not used to parse)."""


class ProtocolError(Exception):
    """Client input the gateway refuses; the socket stays open."""

    def __init__(self, code: ErrorCode, message: str, idempotency_key: str | None = None
                 ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.idempotency_key = idempotency_key

    def frame(self, org_id: str | None = None) -> str:
        return ErrorFrame(org_id=org_id, code=self.code, message=self.message,
                          idempotency_key=self.idempotency_key).model_dump_json()


def parse_client_message(raw: str | bytes, max_text_bytes: int, max_depth: int = 32
                         ) -> ClientMessage:
    """Validate one client frame, or raise `ProtocolError` naming the problem (never echoing
    the content: error frames and logs must not carry what the user wrote)."""
    if len(raw) > max_text_bytes + _FRAME_OVERHEAD_BYTES:
        raise ProtocolError(ErrorCode.MESSAGE_TOO_LARGE,
                            f"frame over {max_text_bytes + _FRAME_OVERHEAD_BYTES} bytes")
    if too_deep(raw, max_depth):
        raise ProtocolError(ErrorCode.TOO_DEEP, f"frame nests deeper than {max_depth} levels")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.INVALID_JSON, "frame is not valid JSON") from exc
    try:
        message = CLIENT_MESSAGE.validate_python(data)
    except ValidationError as exc:
        key = data.get("idempotency_key") if isinstance(data, dict) else None
        raise _to_protocol_error(exc, key if isinstance(key, str) and len(key) <= 64 else None
                                 ) from None
    if isinstance(message, UserMessage) and len(message.text.encode()) > max_text_bytes:
        raise ProtocolError(ErrorCode.MESSAGE_TOO_LARGE,
                            f"text over {max_text_bytes} bytes", message.idempotency_key)
    return message


def _to_protocol_error(exc: ValidationError, idempotency_key: str | None) -> ProtocolError:
    errors = exc.errors(include_input=False, include_url=False)
    if any(e["type"] == "union_tag_invalid" for e in errors):
        return ProtocolError(ErrorCode.UNKNOWN_TYPE,
                             "unknown message type; expected 'user_message', 'resume', "
                             "'action_decision', 'action_decisions', 'cancel' or 'watch'")
    problems = []
    for e in errors:
        # The first loc item is the union tag (e.g. 'user_message'): name the field only.
        loc = [str(p) for p in e["loc"][1:]] or [str(p) for p in e["loc"]]
        field = ".".join(loc)
        if e["type"] == "union_tag_not_found":
            field, text = "type", "Field required"
        else:
            text = e["msg"]
        problems.append(f"{field}: {text}" if field else text)
    return ProtocolError(ErrorCode.INVALID_MESSAGE, "; ".join(problems), idempotency_key)


def peek_event(data: bytes) -> tuple[str, int]:
    """(type, seq) of a stream event from the bus, parsing nothing else of it into models:
    this runs once per token. Raises ValueError for something that is not an event."""
    event = json.loads(data)
    if not isinstance(event, dict):
        raise ValueError("stream event is not a JSON object")
    kind = event.get("type")
    seq = event.get("seq", 0)
    if not isinstance(kind, str) or not isinstance(seq, int):
        raise ValueError("stream event without a string type and an integer seq")
    return kind, seq
