"""Typed domain errors; the handler edge maps them to replies, acks and dead letters."""

from __future__ import annotations

from switchboard_common.errors import ErrorCode, SwitchboardError


class ScopeError(SwitchboardError):
    """A store operation without the org and client it must be confined to."""

    code = ErrorCode.INVALID_MESSAGE


class InvalidEvent(SwitchboardError):
    """A bus event that can never be indexed (bad JSON, failed validation): dead-letter it."""

    code = ErrorCode.INVALID_MESSAGE

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class ModelMismatch(SwitchboardError):
    """The index was built with another embedding model or dimension."""

    code = ErrorCode.UNAVAILABLE
