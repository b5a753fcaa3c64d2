"""The provider interface (no I/O here): every model backend streams text pieces and then
reports one `Completion`. Adapters implement it; the handler depends only on this."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from switchboard_common.model import ModelRequest, ToolCall
from switchboard_common.turns import Usage


@dataclass
class Completion:
    """Filled in by the provider while it streams; final once the stream is exhausted."""

    model: str
    text_parts: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Tool calls the model made (stop_reason `tool_use`), in order."""
    flagged: bool = False
    """The answer repeated the request's canary (see domain/canary.py)."""

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


@dataclass(frozen=True)
class Queued:
    """Yielded instead of text while the request waits for a busy model (the local model
    generates one answer at a time): `position` requests are ahead of it, the running one
    included. Repeated while the wait lasts, so the client hears that it is still waiting."""

    position: int


class TextStream(Protocol):
    completion: Completion

    def __aiter__(self) -> AsyncIterator[str | Queued]: ...


class Provider(Protocol):
    name: str
    """Reported as `ModelResult.provider`: "anthropic", "local"."""

    async def start(self) -> None:
        """Load or warm up, so the first turn is not slow."""

    async def close(self) -> None: ...

    def stream(self, request: ModelRequest) -> AbstractAsyncContextManager[TextStream]:
        """Open one streamed completion. Iterating yields text pieces in order (and `Queued`
        notices before the first one while the model is busy); failures raise
        `ProviderError` (from entering or from iterating)."""
        ...
