"""The tool catalogue: what the model may call, as a shared contract.

Each tool is a pydantic input model plus a description and a risk flag. context turns the
catalogue into the `tools` of a model request (`model_tools`), the action_executor validates
the model's input against the same models and binds each name to its implementation (with its
timeout and rate limit). Sharing the models here, rather than asking the executor over the bus
on every turn, keeps a turn independent of the executor being up and keeps both sides on one
definition.

Every tool's JSON schema also carries `confidence` (0..1) and `rationale` (one line): the model
states how sure it is with every call, and the autonomy policy decides on that. They are
stripped from the arguments before validation (`split_meta`); a missing or out-of-range
confidence is kept as given (None / the raw number) so the policy can answer "ask".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

from switchboard_common.model import ToolDef

CONFIDENCE = "confidence"
RATIONALE = "rationale"
MAX_RATIONALE_CHARS = 300


class ToolInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- calendar (CalDAV, one calendar per client) ----

class CalendarCreate(ToolInput):
    title: str = Field(min_length=1, max_length=200, description="Event title")
    start: AwareDatetime = Field(description="Start, ISO 8601 with time zone offset")
    end: AwareDatetime | None = Field(None, description="End; default start + duration_minutes")
    duration_minutes: int = Field(30, ge=1, le=24 * 60)
    location: str = Field("", max_length=200)
    attendees: list[EmailStr] = Field(default_factory=list, max_length=50,
                                      description="Attendee e-mail addresses")
    description: str = Field("", max_length=4000)


class CalendarList(ToolInput):
    start: AwareDatetime = Field(description="Window start, ISO 8601 with time zone offset; "
                                             "for a whole day, 00:00 of that day")
    end: AwareDatetime = Field(description="Window end, ISO 8601 with time zone offset; for "
                                           "a whole day, 00:00 of the next day")


class CalendarDelete(ToolInput):
    event_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")


# ---- mail ----

# Addresses are checked (syntax only, no DNS: `email-validator` through pydantic's EmailStr)
# before anything runs: a malformed one goes back to the model as `invalid_arguments` at once.
class EmailDraft(ToolInput):
    to: list[EmailStr] = Field(min_length=1, max_length=50)
    cc: list[EmailStr] = Field(default_factory=list, max_length=50)
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=50_000)


class EmailSend(EmailDraft):
    pass


# ---- tasks (Valkey, per client) ----

class TaskAdd(ToolInput):
    title: str = Field(min_length=1, max_length=300, description="What is to be done")
    due: date | None = Field(None, description="Due date (YYYY-MM-DD) when one is named")
    notes: str = Field("", max_length=4000)


class TaskList(ToolInput):
    status: Literal["open", "done", "all"] = "open"


class TaskComplete(ToolInput):
    task_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


# ---- memory ----

class MemorySearchInput(ToolInput):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(5, ge=1, le=20)


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    input: type[ToolInput]
    risky: bool = False
    """Risky tools never run alone in `assist` mode (see the autonomy policy)."""
    outbound: bool = False
    """Sends data out of the platform (mail, invitations): in a turn that read untrusted
    content it never runs alone, whatever the mode and confidence (docs/security.md)."""
    outside_text: bool = False
    """Its result carries text written outside the platform (mail, calendar entries, ingested
    documents): reading it taints the turn."""
    read_only: bool = False
    """Only reads (a lookup): runs without approval in every autonomy mode, so the model can
    look something up before it proposes the action that needs approval."""


# The descriptions say what requests each tool serves, in the words clients use: a small local
# model routes by them alone (it sent "a 30 minute call on Monday at 8:30" to task_add when they
# only named the tool's object; with these it routed 45 of 46 action requests right). Wording
# does not keep it from calling a tool on general questions ("explain what EBITDA means" still
# went to memory_search): docs/performance.md#offline-model.
CATALOG: dict[str, ToolInfo] = {t.name: t for t in (
    # Invitations go to the attendees' mail servers: creating an event sends data out.
    ToolInfo("calendar_create", "Create an event in the client's calendar: a meeting, call, "
             "appointment or blocked time at a given day and time.", CalendarCreate,
             outbound=True),
    ToolInfo("calendar_list", "List the client's calendar events in a time window: what is "
             "on the calendar, meetings on a day, whether the client is free.",
             CalendarList, outside_text=True, read_only=True),
    ToolInfo("calendar_delete", "Delete an event from the client's calendar.", CalendarDelete,
             risky=True),
    ToolInfo("email_draft", "Write an e-mail to someone's address and save it as a draft for "
             "the client (not sent).", EmailDraft),
    ToolInfo("email_send", "Send an e-mail on the client's behalf.", EmailSend, risky=True,
             outbound=True),
    ToolInfo("task_add", "Add a to-do to the client's task list: something the client must "
             "do or be reminded of, optionally by a due date (no meeting time).", TaskAdd),
    # Tasks may have been written by the model in an earlier tainted turn.
    ToolInfo("task_list", "List the client's tasks (to-do list).", TaskList, outside_text=True,
             read_only=True),
    ToolInfo("task_complete", "Mark one of the client's tasks as done.", TaskComplete),
    ToolInfo("memory_search", "Search the client's own records (mail, documents, notes, "
             "earlier conversations): what someone said or wrote, what was agreed. Not for "
             "general knowledge or advice.", MemorySearchInput, outside_text=True,
             read_only=True),
)}


def input_schema(info: ToolInfo) -> dict[str, Any]:
    """The JSON schema the model sees: the input model's, plus confidence and rationale."""
    schema = info.input.model_json_schema()
    schema.pop("title", None)
    props = dict(schema.get("properties", {}))
    props[CONFIDENCE] = {"type": "number", "minimum": 0, "maximum": 1,
                         "description": "How sure you are that this call is what the user "
                                        "wants, 0..1"}
    props[RATIONALE] = {"type": "string", "maxLength": MAX_RATIONALE_CHARS,
                        "description": "One line: why this call"}
    schema["properties"] = props
    schema["required"] = [*schema.get("required", []), CONFIDENCE, RATIONALE]
    return schema


@functools.cache
def _tool_def(name: str) -> ToolDef:
    # Schema generation costs far more than the rest of a turn's prompt assembly: once per
    # tool per process.
    return ToolDef(name=name, description=CATALOG[name].description,
                   input_schema=input_schema(CATALOG[name]))


def model_tools(enabled: list[str]) -> list[ToolDef]:
    """The tool definitions for a model request: the enabled tools the catalogue knows."""
    return [_tool_def(n) for n in enabled if n in CATALOG]


def split_meta(raw: dict[str, Any]) -> tuple[dict[str, Any], float | None, str]:
    """(arguments, confidence, rationale) from the model's raw tool input. A confidence that
    is not a finite number is None; range checks belong to the policy (out of range -> ask)."""
    args = {k: v for k, v in raw.items() if k not in (CONFIDENCE, RATIONALE)}
    value = raw.get(CONFIDENCE)
    confidence: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        confidence = float(value)
    rationale = raw.get(RATIONALE)
    text = ""
    if isinstance(rationale, str) and rationale.strip():
        text = rationale.strip().splitlines()[0][:MAX_RATIONALE_CHARS]
    return args, confidence, text
