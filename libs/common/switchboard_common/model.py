"""Model subjects: asking a provider for one streamed completion, and its result.

| subject                   | kind               | producer -> consumer   |
|---------------------------|--------------------|------------------------|
| model.requested.<org>     | command, JetStream | context -> llm_stream  |
| model.completed.<org>     | event, JetStream   | llm_stream -> context  |

Token deltas for the request go to `turns.events.<org>.<turn>` (see `turns`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.envelope import Envelope, Id
from switchboard_common.errors import ErrorCode
from switchboard_common.turns import Usage

Purpose = Literal["answer", "summary"]

OFFSET_RULE = "Write dates and times as ISO 8601 with the offset"
"""Opens the line of `ModelRequest.context` that asks a model to write date-times with their
offset (Claude would otherwise write `Z` for a client's local 9:00). The local model writes
local wall-clock time under a grammar and is told so once in its stable block, so its prompt
leaves this line out: ~50 tokens it would evaluate on every turn, saying the opposite."""


def model_requested_subject(org: str) -> str:
    return f"model.requested.{org}"


def model_completed_subject(org: str) -> str:
    return f"model.completed.{org}"


def model_msg_id(turn_id: str, iteration: int) -> str:
    """One model call per (turn, iteration): a re-published request is dropped by JetStream."""
    return f"model:{turn_id}:{iteration}"


def result_msg_id(turn_id: str, iteration: int) -> str:
    return f"model-result:{turn_id}:{iteration}"


class TextBlock(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["text"] = "text"
    text: str


class ToolUseBlock(BaseModel):
    """The model asks for a tool call (Anthropic `tool_use`)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(BaseModel):
    """The outcome of a tool call, sent back in a user message (Anthropic `tool_result`)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str
    is_error: bool = False


ContentBlock = Annotated[TextBlock | ToolUseBlock | ToolResultBlock,
                         Field(discriminator="type")]


class ChatMessage(BaseModel):
    """One message of a prompt. `content` is plain text or, inside the tool-use loop, a list
    of content blocks; stored conversations only ever hold plain text."""

    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]

    @property
    def text(self) -> str:
        """The message's text (text blocks joined; tool blocks carry none)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))


class ToolDef(BaseModel):
    """A tool the model may call: name, description and JSON schema of its input."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    input_schema: dict[str, Any]


class ToolCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ModelRequest(Envelope):
    """Command: stream one completion for a turn. Owned by llm_stream."""

    turn_id: Id
    user_id: Id
    client_id: Id
    conversation_id: Id
    iteration: int = 0
    system: str
    """The stable prefix (persona, skills): llm_stream marks it for prompt caching."""
    context: str = ""
    """Per-turn system context (the date lines), sent after the cached prefix."""
    recall: str = ""
    """What was looked up for this turn, each piece quoted as data: outcomes of earlier
    actions, the conversation summary, retrieved memory. Sent after `context`. Kept apart
    because it informs the answer and is not a request: a small local model routes the
    client's message without it (given memory of past bookings, it put "Ok, perfect" and
    "tips for a productive Monday" on the calendar)."""
    messages: list[ChatMessage]
    model: str | None = None
    """Preferred model; None lets the provider pick its configured default."""
    max_tokens: int = 512
    deadline_at: datetime
    purpose: Purpose = "answer"
    """`answer` streams deltas to the client; `summary` (context's background summarisation)
    streams nothing and only publishes the result."""
    meta: dict[str, str] = {}
    """Opaque to llm_stream: copied to the ModelResult so the requester can match it."""
    tools: list[ToolDef] = []
    """Tools the model may call; a response that calls some ends with stop_reason
    `tool_use` and lists them in `ModelResult.tool_calls`."""
    seq_base: int = 0
    """The turn's client stream already reached this seq (a later iteration of the tool-use
    loop): deltas continue after it even when the last stored event carries no seq."""
    canary: str = ""
    """A marker placed in `system`: llm_stream stops streaming an answer that repeats it
    (a system prompt leak) and reports `canary_hit` on the result."""
    leak_markers: list[str] = []
    """Further fixed pieces of `system` watched the same way (the starts of its sentences)."""


class ProviderFailure(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ErrorCode
    message: str
    retryable: bool
    status: int | None = None


class ModelResult(Envelope):
    """Event: the completion finished (or failed for good)."""

    turn_id: Id
    user_id: Id
    client_id: Id
    conversation_id: Id
    iteration: int = 0
    provider: str
    model: str
    text: str = ""
    stop_reason: str | None = None
    usage: Usage = Usage()
    last_seq: int = 0
    attempts: int = 1
    error: ProviderFailure | None = None
    purpose: Purpose = "answer"
    meta: dict[str, str] = {}
    tool_calls: list[ToolCall] = []
    """With stop_reason `tool_use`: the calls, in the order the model made them."""
    canary_hit: bool = False
    """The answer repeated the request's canary: the text from it on was withheld."""
    request: ModelRequest | None = None
    """With tool_calls: the request this answers, so the requester continues the
    conversation from it (its messages, tools and meta) without having stored it for every
    call that ends without tools."""
