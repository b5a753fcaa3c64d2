"""Provider failures, typed. Adapters turn SDK exceptions into `ProviderError`; the handler
turns a `ProviderFailure` into nak-with-backoff (retryable, attempts left) or into the turn's
error result. Messages name the provider, status and request id, never prompt content."""

from __future__ import annotations

from switchboard_common.errors import ErrorCode, SwitchboardError
from switchboard_common.model import ProviderFailure

# Anthropic's `error.type` values (HTTP bodies and mid-stream SSE `error` events).
_BY_TYPE: dict[str, tuple[ErrorCode, bool]] = {
    "rate_limit_error": (ErrorCode.PROVIDER_RATE_LIMITED, True),
    "overloaded_error": (ErrorCode.PROVIDER_OVERLOADED, True),
    "api_error": (ErrorCode.PROVIDER_UNAVAILABLE, True),
    "timeout_error": (ErrorCode.PROVIDER_TIMEOUT, True),
    "invalid_request_error": (ErrorCode.PROVIDER_BAD_REQUEST, False),
    "not_found_error": (ErrorCode.PROVIDER_BAD_REQUEST, False),
    "request_too_large": (ErrorCode.PROVIDER_BAD_REQUEST, False),
    "authentication_error": (ErrorCode.PROVIDER_AUTH, False),
    "permission_error": (ErrorCode.PROVIDER_AUTH, False),
}
_BY_STATUS: dict[int, tuple[ErrorCode, bool]] = {
    429: (ErrorCode.PROVIDER_RATE_LIMITED, True),
    529: (ErrorCode.PROVIDER_OVERLOADED, True),
    408: (ErrorCode.PROVIDER_TIMEOUT, True),
    400: (ErrorCode.PROVIDER_BAD_REQUEST, False),
    404: (ErrorCode.PROVIDER_BAD_REQUEST, False),
    413: (ErrorCode.PROVIDER_BAD_REQUEST, False),
    422: (ErrorCode.PROVIDER_BAD_REQUEST, False),
    401: (ErrorCode.PROVIDER_AUTH, False),
    403: (ErrorCode.PROVIDER_AUTH, False),
}


class ProviderError(SwitchboardError):
    """A provider call failed; `failure` is what goes on the bus."""

    def __init__(self, failure: ProviderFailure) -> None:
        super().__init__(failure.message, code=failure.code, retryable=failure.retryable)
        self.failure = failure


def from_status(status: int | None, error_type: str | None, detail: str) -> ProviderFailure:
    """Classify an HTTP error response or an SSE `error` event (which arrives with the
    stream's 200 status, so its `error.type` decides)."""
    code, retryable = ErrorCode.PROVIDER_ERROR, False
    if status in _BY_STATUS:
        code, retryable = _BY_STATUS[status]
    elif status is not None and status >= 500:
        code, retryable = ErrorCode.PROVIDER_UNAVAILABLE, True
    elif error_type in _BY_TYPE:
        code, retryable = _BY_TYPE[error_type]
    return ProviderFailure(code=code, message=detail, retryable=retryable,
                           status=status if status and status >= 400 else None)


def timeout(detail: str) -> ProviderFailure:
    return ProviderFailure(code=ErrorCode.PROVIDER_TIMEOUT, message=detail, retryable=True)


def unreachable(detail: str) -> ProviderFailure:
    return ProviderFailure(code=ErrorCode.PROVIDER_UNAVAILABLE, message=detail, retryable=True)


def deadline_passed() -> ProviderFailure:
    """The turn's deadline passed: nobody waits for this answer any more, so never retried."""
    return ProviderFailure(code=ErrorCode.PROVIDER_TIMEOUT, retryable=False,
                           message="the turn's deadline passed before the model answered")


def went_quiet(*, first: bool) -> ProviderFailure:
    """The model stopped sending: no first token in time, or too long between two pieces.
    Not retried: a retry would start the answer over while the client waits (and, for the
    local model, queue behind everyone again); the user's message is kept and can be sent
    again."""
    if first:
        return ProviderFailure(code=ErrorCode.FIRST_TOKEN_TIMEOUT, retryable=False,
                               message="the model sent no first token in time")
    return ProviderFailure(code=ErrorCode.STREAM_IDLE_TIMEOUT, retryable=False,
                           message="the model stopped sending in the middle of its answer")
