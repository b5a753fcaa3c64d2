"""Typed error codes shared by the bus and the WebSocket protocol."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # client input (gateway)
    INVALID_JSON = "invalid_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    MESSAGE_TOO_LARGE = "message_too_large"
    UNKNOWN_TURN = "unknown_turn"
    UNKNOWN_CLIENT = "unknown_client"
    FORBIDDEN = "forbidden"
    UNAUTHORIZED = "unauthorized"
    """No acceptable credential (or too many failures from this address); the socket closes
    with 1008 after this frame."""
    TOO_DEEP = "too_deep"
    # consumption limits (gateway): retry after `retry_after_s`
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    # turn processing
    TURN_TIMEOUT = "turn_timeout"
    INTERNAL = "internal_error"
    UNAVAILABLE = "service_unavailable"
    WARMING_UP = "warming_up"
    """A service the turn needs is starting (memory_indexer loading its model and index):
    retry shortly with the same idempotency key."""
    # model provider (llm_stream)
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    PROVIDER_OVERLOADED = "provider_overloaded"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_BAD_REQUEST = "provider_bad_request"
    PROVIDER_AUTH = "provider_auth"
    PROVIDER_ERROR = "provider_error"
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"
    STREAM_IDLE_TIMEOUT = "stream_idle_timeout"
    # actions and approvals (action_executor)
    UNKNOWN_ACTION = "unknown_action"
    ACTION_ALREADY_DECIDED = "action_already_decided"
    ACTION_EXPIRED = "action_expired"
    ACTION_NOT_UNDOABLE = "action_not_undoable"
    INVALID_ARGUMENTS = "invalid_arguments"


class SwitchboardError(Exception):
    """Base of typed domain errors; `code` goes on the wire, the message is for people."""

    code: ErrorCode = ErrorCode.INTERNAL
    retryable: bool = False

    def __init__(self, message: str, *, code: ErrorCode | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable
