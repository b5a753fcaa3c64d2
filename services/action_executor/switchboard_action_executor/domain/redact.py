"""What of an action's arguments and output may be written to the audit log and to logs.
Mail bodies and free-text descriptions are replaced by their size: the audit log proves what
was done without becoming a second copy of the client's mail."""

from __future__ import annotations

from typing import Any

_TEXT_FIELDS = ("body", "description", "notes", "text")


def for_audit(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in _TEXT_FIELDS and isinstance(value, str):
            out[f"{key}_chars"] = len(value)
        elif key == "hits" and isinstance(value, list):
            out["hits"] = len(value)
        else:
            out[key] = value
    return out
