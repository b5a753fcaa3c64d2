"""The shared tool catalogue and the executor's registry: schemas for the model, meta-field
splitting, argument validation without leaking values, redaction for the audit log."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from switchboard_action_executor.domain.redact import for_audit
from switchboard_action_executor.domain.registry import (
    Registry,
    Tool,
    ToolContext,
    argument_problems,
)
from switchboard_common.tools import CATALOG, input_schema, model_tools, split_meta


def test_every_schema_asks_for_confidence_and_rationale() -> None:
    for info in CATALOG.values():
        schema = input_schema(info)
        assert schema["type"] == "object"
        assert {"confidence", "rationale"} <= set(schema["required"])
        assert schema["properties"]["confidence"]["maximum"] == 1
    create = input_schema(CATALOG["calendar_create"])
    assert {"title", "start"} <= set(create["required"])
    assert create["properties"]["start"]["format"] == "date-time"


def test_risky_tools() -> None:
    assert {n for n, t in CATALOG.items() if t.risky} == {"email_send", "calendar_delete"}


def test_model_tools_only_enabled_and_known() -> None:
    tools = model_tools(["task_add", "no_such_tool", "email_send"])
    assert [t.name for t in tools] == ["task_add", "email_send"]


@pytest.mark.parametrize(("raw", "confidence", "rationale"), [
    ({"title": "x", "confidence": 0.8, "rationale": "asked\nsecond line"}, 0.8, "asked"),
    ({"title": "x"}, None, ""),
    ({"title": "x", "confidence": "high"}, None, ""),
    ({"title": "x", "confidence": True}, None, ""),
    ({"title": "x", "confidence": 3}, 3.0, ""),  # kept: the policy says "out of range"
])
def test_split_meta(raw: dict[str, object], confidence: float | None, rationale: str) -> None:
    args, got, why = split_meta(raw)
    assert args == {"title": "x"} and got == confidence and why == rationale


def test_argument_problems_name_fields_not_values() -> None:
    with pytest.raises(ValidationError) as info:
        CATALOG["email_send"].input.model_validate(
            {"to": [], "subject": "secret subject", "body": "secret body", "bcc": "x"})
    text = argument_problems(info.value)
    assert "to" in text and "bcc" in text and "secret" not in text


def test_registry_refuses_tools_outside_the_catalogue() -> None:
    async def fn(ctx: ToolContext, args: object) -> dict[str, object]:
        return {}

    registry = Registry([Tool(CATALOG["task_add"], fn)])
    assert registry.names() == ["task_add"]
    from switchboard_common.tools import ToolInfo, ToolInput
    with pytest.raises(ValueError, match="catalogue"):
        registry.add(Tool(ToolInfo("rm_rf", "no", ToolInput), fn))


def test_audit_redaction_drops_mail_bodies() -> None:
    out = for_audit({"to": ["a@x.org"], "subject": "Hi", "body": "very private"})
    assert out == {"to": ["a@x.org"], "subject": "Hi", "body_chars": 12}
