"""Action subjects: proposed tool calls, their results, and the user's decisions on them.

| subject                      | kind                  | producer -> consumer              |
|------------------------------|-----------------------|-----------------------------------|
| actions.proposed.<org>       | command, JetStream    | context -> action_executor        |
| actions.results.<org>        | event, JetStream      | action_executor -> context        |
| actions.decide.<org>         | request/reply, core   | gateway -> action_executor        |
| actions.undo.<org>           | request/reply, core   | gateway -> action_executor        |
| turns.events.<org>.<turn>    | core NATS, also kept  | action_executor -> gateway        |
| agency.<org>.<user>          | core NATS             | action_executor -> gateway        |

On the turn's events subject the executor publishes `action_pending` (approval card) and
`action_result` frames. A background turn (an ingested event matched a trigger rule; its
conversation is `activity`) has no socket following it, so its frames also go to
`agency.<org>.<user>`, which every socket of the turn's owner receives (the agency inbox).

A proposal carries the autonomy policy context resolved from the skills of that (user, client),
so the executor decides with exactly what the turn's prompt was built from. Deciding is
request/reply because the user waits for the answer (and must hear "already decided" or
"expired" at once); the executor owns every state change of an action.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from switchboard_common.envelope import SCHEMA_VERSION, Envelope, Id, utcnow
from switchboard_common.errors import ErrorCode
from switchboard_common.skills import Autonomy, Thresholds

Outcome = Literal["execute", "propose", "ask"]
ActionStatus = Literal[
    "pending",      # waiting for the user's approval (expires)
    "needs_input",  # the policy said "ask": the model asks the user for details instead
    "approved",     # approved, execution under way (or to be resumed after a crash)
    "executed",     # the effect happened; `output` holds what the tool returned
    "failed",       # the tool failed for good; `error` says why, readably
    "rejected",     # the user said no
    "expired",      # nobody decided in time
    "refused",      # never runnable: unknown or disabled tool, invalid arguments
    "undone",       # it was executed, then a user reverted its effect (`undo`)
]
FINAL_STATUSES = frozenset({"executed", "failed", "rejected", "expired", "refused",
                            "needs_input", "undone"})


MAX_TAINT = 50
"""Sources named on one proposal. A conversation's taint is inherited by its later turns, so a
long one (a client's activity conversation: one event per background turn) outgrows any bound:
the proposal keeps the first ones (a background turn's own event first); any one of them
already holds a risky call for approval."""


def action_proposed_subject(org: str) -> str:
    return f"actions.proposed.{org}"


def action_undo_subject(org: str) -> str:
    return f"actions.undo.{org}"


def action_results_subject(org: str) -> str:
    return f"actions.results.{org}"


def action_decide_subject(org: str) -> str:
    return f"actions.decide.{org}"


def agency_subject(org: str, user: str) -> str:
    return f"agency.{org}.{user}"


def action_id_for(turn_id: str, iteration: int, tool_use_id: str) -> str:
    """Deterministic: a re-published proposal (redelivered model result) is the same action."""
    return hashlib.sha256(f"{turn_id}:{iteration}:{tool_use_id}".encode()).hexdigest()[:32]


class PolicyDecision(BaseModel):
    """What the autonomy policy decided and everything it decided on."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    reason: str
    mode: Literal["suggest", "assist", "automate"]
    risky: bool
    confidence: float | None
    """What the policy decided on: the model's confidence calibrated by the client x tool
    decision history (switchboard_common.learning)."""
    thresholds: Thresholds
    outbound: bool = False
    tainted_by: list[str] = Field(default_factory=list)
    """Untrusted sources that entered the turn's context before this call was made."""
    canary_hit: bool = False
    """The system prompt's canary appeared in the arguments (a prompt leak attempt)."""
    raw_confidence: float | None = None
    """The model's own confidence, before calibration."""


class ActionProposed(Envelope):
    """Command: decide on (and maybe run) one tool call of a model response."""

    action_id: Id
    turn_id: Id
    user_id: Id
    client_id: Id
    conversation_id: Id = "main"
    iteration: int = 0
    tool_use_id: str = ""
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    confidence: float | None = None
    """As the model gave it; None when missing or not a number. Out of range is kept so the
    policy (not the parser) answers "ask" and records why."""
    rationale: str = ""
    autonomy: Autonomy = Autonomy()
    enabled_tools: list[str] = Field(default_factory=list)
    tainted_by: list[str] = Field(default_factory=list, max_length=MAX_TAINT)
    """Untrusted sources (`memory:email:<id>`, `tool:calendar_list`) that entered the turn's
    context before the model made this call: a risky or outbound tool then needs approval."""
    canary_hit: bool = False
    """context found the system prompt's canary in the arguments."""
    caused_by: str | None = None
    """A background turn's triggering event (`event:<source>:<id>`); None for a user's turn."""


class ActionResult(Envelope):
    """Event: where one proposed action stands, for the tool-use loop (one per proposal, and
    again when a pending action is later decided)."""

    action_id: Id
    turn_id: Id
    user_id: Id = "unknown"
    client_id: Id
    conversation_id: Id = "main"
    iteration: int = 0
    tool_use_id: str = ""
    tool: str = ""
    status: ActionStatus
    output: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    """Readable: what happened, for the model's tool_result and for the user."""
    is_error: bool = False
    code: ErrorCode | None = None
    """Typed reason of a refusal (`invalid_arguments`: the arguments failed the tool's
    schema; the message names the fields, never their values)."""


class Decision(BaseModel):
    """Who decided what, when."""

    model_config = ConfigDict(frozen=True)

    approve: bool
    by: str
    at: datetime = Field(default_factory=utcnow)
    edited: bool = False
    reason: str = ""


class Undo(BaseModel):
    """Who reverted an executed action, when, why, and what the compensation returned."""

    model_config = ConfigDict(frozen=True)

    by: str
    at: datetime = Field(default_factory=utcnow)
    reason: str = ""
    output: dict[str, Any] = Field(default_factory=dict)


class ActionRecord(BaseModel):
    """An action as stored (Valkey, `act:{org}:{id}`): the durable state approvals, listing and
    the audit log read."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    org_id: str
    turn_id: str
    user_id: str
    client_id: str
    conversation_id: str = "main"
    iteration: int = 0
    tool_use_id: str = ""
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    confidence: float | None = None
    rationale: str = ""
    risky: bool = False
    policy: PolicyDecision | None = None
    tainted_by: list[str] = Field(default_factory=list)
    caused_by: str | None = None
    """The ingested event whose background turn proposed this (None: a user's turn)."""
    status: ActionStatus
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    decision: Decision | None = None
    output: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    error_code: ErrorCode | None = None
    duration_ms: float | None = None
    executed_at: datetime | None = None
    undo: Undo | None = None
    """Set when status is `undone`."""

    def result(self, message: str, *, org: str | None = None) -> ActionResult:
        return ActionResult(
            org_id=org or self.org_id, action_id=self.action_id, turn_id=self.turn_id,
            user_id=self.user_id, client_id=self.client_id,
            conversation_id=self.conversation_id, iteration=self.iteration,
            tool_use_id=self.tool_use_id, tool=self.tool, status=self.status,
            output=self.output, message=message,
            is_error=self.status in ("failed", "refused"), code=self.error_code)


class AuditEntry(BaseModel):
    """One line of a client's audit log. `details` never holds mail bodies: the executor
    records argument names and sizes for mail, and tool outputs as returned."""

    model_config = ConfigDict(frozen=True)

    at: datetime = Field(default_factory=utcnow)
    kind: Literal["proposed", "decided", "executed", "failed", "expired", "flagged", "undone"]
    action_id: str
    tool: str
    actor: str
    """The user who decided, or `policy` / `system`."""
    details: dict[str, Any] = Field(default_factory=dict)


# ---- deciding (request/reply, served by action_executor) ----

class DecideAction(Envelope):
    action_id: Id
    user_id: Id
    approve: bool
    arguments: dict[str, Any] | None = None
    """Approve with these arguments instead of the proposed ones (validated again)."""
    reason: str = Field("", max_length=500)


class UndoAction(Envelope):
    """Revert an executed action's effect with its tool's compensating operation (a created
    calendar event or task is deleted, a saved draft removed). Tools whose effect cannot be
    taken back (a sent mail) have none: the request is refused and nothing changes."""

    action_id: Id
    user_id: Id
    reason: str = Field("", max_length=500)


class DecideReply(BaseModel):
    ok: bool
    code: ErrorCode | None = None
    message: str = ""
    record: ActionRecord | None = None


# ---- client stream frames (turns.events.<org>.<turn>, forwarded to the WebSocket) ----

class _ActionFrame(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    v: int = SCHEMA_VERSION
    org_id: str
    turn_id: str
    seq: int = 0
    """Action frames carry no position in the turn's text (seq 0): they may arrive after the
    turn ended, and a client matches them by `action_id`."""


class ActionPending(_ActionFrame):
    """An approval card: approve, reject or edit it with `action_decision`."""

    type: Literal["action_pending"] = "action_pending"
    action_id: str
    client_id: str
    tool: str
    arguments: dict[str, Any]
    confidence: float | None
    rationale: str
    risky: bool
    expires_at: datetime | None
    reason: str
    tainted_by: list[str] = Field(default_factory=list)
    """The untrusted sources that influenced this call (empty: none)."""
    caused_by: str | None = None
    """The ingested event (`event:<source>:<id>`) whose background turn proposed this card;
    None for a user's turn."""
    calibrated_confidence: float | None = None
    """`confidence` (the model's) calibrated by this client's decisions on this tool: what
    the policy decided on."""


class ActionResultFrame(_ActionFrame):
    """Where an action ended up (executed, failed, rejected, expired, needs_input, refused)."""

    type: Literal["action_result"] = "action_result"
    action_id: str
    client_id: str
    tool: str
    status: ActionStatus
    message: str
    output: dict[str, Any] = Field(default_factory=dict)
    code: ErrorCode | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    """What the action was called with (as on an approval card), so an action that ran
    alone shows what it did."""


class ActionDecided(ActionResultFrame):
    """The gateway's answer to the socket that sent an `action_decision` (same fields)."""

    type: Literal["action_decided"] = "action_decided"  # type: ignore[assignment]


_MESSAGES = {
    "pending": "Waiting for the user's approval (an approval card was shown). Do not assume "
               "it happened; tell the user it awaits their approval.",
    "needs_input": "Not done: confidence too low to propose this. Ask the user for the "
                   "missing details instead.",
    "approved": "Approved; being executed.",
    "rejected": "The user rejected this action; it was not done.",
    "expired": "Nobody approved this action in time; it was not done.",
    "undone": "It was done, then the user undid it: its effect was reverted. Do not do it "
              "again unless the user asks.",
}


def describe(record: ActionRecord) -> str:
    """A readable line for the model's tool_result and the user's screen."""
    if record.status == "executed":
        return f"{record.tool} done."
    if record.status in ("failed", "refused"):
        return f"{record.tool} failed: {record.error}"
    return _MESSAGES.get(record.status, record.status)
