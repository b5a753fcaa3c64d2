"""Action subjects (the executor's real work arrives with the actions issue).

| subject                    | kind               | producer -> consumer          |
|----------------------------|--------------------|-------------------------------|
| actions.proposed.<org>     | command, JetStream | llm_stream/context -> action_executor |
| actions.results.<org>      | event, JetStream   | action_executor -> context    |
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from switchboard_common.envelope import Envelope, Id

ACTION_PROPOSED = "actions.proposed.{org}"
ACTION_RESULTS = "actions.results.{org}"


def action_proposed_subject(org: str) -> str:
    return f"actions.proposed.{org}"


def action_results_subject(org: str) -> str:
    return f"actions.results.{org}"


class ActionProposed(Envelope):
    action_id: Id
    turn_id: Id
    user_id: Id
    client_id: Id
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    confidence: float = Field(ge=0.0, le=1.0)
    rationale: str = ""


class ActionResult(Envelope):
    action_id: Id
    turn_id: Id
    client_id: Id
    status: str
    output: dict[str, Any] = Field(default_factory=dict)
