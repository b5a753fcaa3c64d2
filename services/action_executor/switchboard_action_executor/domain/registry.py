"""The tool registry: each catalogue entry (`switchboard_common.tools`: input model,
description, risk) bound to an async implementation with its timeout, rate limit and whether
retrying it after an ambiguous failure is safe.

Errors a tool raises are typed: `TransientToolError` may be retried (the executor does, with
backoff: the one retry layer for tool failures); `ToolError` is final and its message goes
back to the model as an error tool result and to the user, so it must be readable and must
not contain personal data beyond what the user already gave.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from switchboard_common.tools import CATALOG, ToolInfo, ToolInput


class ToolError(Exception):
    """Permanent: retrying will not help (bad input for the server, not found, refused)."""


class TransientToolError(ToolError):
    """May succeed when tried again (connection refused, 429/5xx, timeout of a safe call)."""


@dataclass(frozen=True)
class ToolContext:
    org: str
    client_id: str
    user_id: str
    action_id: str
    """Stable across retries and redeliveries: tools derive their own idempotency keys
    (CalDAV UID, Message-ID, task id) from it."""
    resumed: bool = False
    """An earlier attempt at this action's effect may have happened (a crash or timeout)."""


ToolFn = Callable[[ToolContext, Any], Awaitable[dict[str, Any]]]
UndoFn = Callable[[ToolContext, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Reverts the effect of an executed call, given its context and the arguments it ran with.
Must be safe to repeat (a second undo of a deleted event finds nothing and succeeds)."""


@dataclass(frozen=True)
class Tool:
    info: ToolInfo
    fn: ToolFn
    timeout_s: float = 10.0
    rate_per_minute: int | None = None
    """None: the executor's default."""
    idempotent: bool = True
    """Safe to attempt again after an ambiguous failure (timeout): the effect is keyed."""
    undo: UndoFn | None = None
    """The compensating operation; None: the effect cannot be taken back (a sent mail) or
    there is nothing to take back (a lookup)."""

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def risky(self) -> bool:
        return self.info.risky

    def parse(self, arguments: dict[str, Any]) -> ToolInput:
        return self.info.input.model_validate(arguments)


def argument_problems(exc: ValidationError) -> str:
    """Field names and problems, never the values (they may be personal data)."""
    parts = []
    for e in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(p) for p in e["loc"]) or "arguments"
        parts.append(f"{field}: {e['msg']}")
    return "; ".join(parts)


class Registry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name not in CATALOG or CATALOG[tool.name] is not tool.info:
            raise ValueError(f"tool {tool.name!r} is not in the shared catalogue")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)
