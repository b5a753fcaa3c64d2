"""Pure llm_stream logic: error classification, the retry policy, the delta encoder,
settings and the local model's prompt window."""

from __future__ import annotations

import pytest

from switchboard_common.errors import ErrorCode
from switchboard_common.model import ChatMessage, ProviderFailure
from switchboard_common.turns import Delta
from switchboard_llm_stream.adapters.local import fit_window
from switchboard_llm_stream.domain import errors
from switchboard_llm_stream.domain.deltas import DeltaEncoder
from switchboard_llm_stream.domain.retry import RetryPolicy
from switchboard_llm_stream.settings import Settings


@pytest.mark.parametrize(("status", "kind", "code", "retryable"), [
    (429, "rate_limit_error", ErrorCode.PROVIDER_RATE_LIMITED, True),
    (529, "overloaded_error", ErrorCode.PROVIDER_OVERLOADED, True),
    (500, "api_error", ErrorCode.PROVIDER_UNAVAILABLE, True),
    (503, None, ErrorCode.PROVIDER_UNAVAILABLE, True),
    (502, None, ErrorCode.PROVIDER_UNAVAILABLE, True),
    (408, None, ErrorCode.PROVIDER_TIMEOUT, True),
    (400, "invalid_request_error", ErrorCode.PROVIDER_BAD_REQUEST, False),
    (404, "not_found_error", ErrorCode.PROVIDER_BAD_REQUEST, False),
    (413, "request_too_large", ErrorCode.PROVIDER_BAD_REQUEST, False),
    (401, "authentication_error", ErrorCode.PROVIDER_AUTH, False),
    (403, "permission_error", ErrorCode.PROVIDER_AUTH, False),
    (409, None, ErrorCode.PROVIDER_ERROR, False),
    # Mid-stream SSE `error` events arrive with the stream's 200: the type decides.
    (200, "overloaded_error", ErrorCode.PROVIDER_OVERLOADED, True),
    (200, "rate_limit_error", ErrorCode.PROVIDER_RATE_LIMITED, True),
    (200, "api_error", ErrorCode.PROVIDER_UNAVAILABLE, True),
    (200, "something_new", ErrorCode.PROVIDER_ERROR, False),
])
def test_provider_errors_are_classified(status: int, kind: str | None, code: ErrorCode,
                                        retryable: bool) -> None:
    failure = errors.from_status(status, kind, "detail")
    assert (failure.code, failure.retryable) == (code, retryable)
    assert failure.status == (status if status >= 400 else None)


def test_timeouts_and_connection_failures_are_retryable() -> None:
    assert errors.timeout("x").code is ErrorCode.PROVIDER_TIMEOUT and errors.timeout("x").retryable
    assert errors.unreachable("x").code is ErrorCode.PROVIDER_UNAVAILABLE
    assert not errors.deadline_passed().retryable


def _failure(retryable: bool = True) -> ProviderFailure:
    return ProviderFailure(code=ErrorCode.PROVIDER_OVERLOADED, message="m", retryable=retryable)


def test_retry_policy_backs_off_and_stops() -> None:
    policy = RetryPolicy(max_attempts=3, max_deliver=5, backoff_s=0.5, backoff_max_s=1.5)
    assert policy.retry_after(_failure(), attempt=1, time_left_s=60) == 0.5
    assert policy.retry_after(_failure(), attempt=2, time_left_s=60) == 1.0
    assert policy.retry_after(_failure(), attempt=3, time_left_s=60) is None  # attempts used
    assert policy.backoff(5) == 1.5  # capped
    assert policy.retry_after(_failure(False), attempt=1, time_left_s=60) is None
    assert policy.retry_after(_failure(), attempt=1, time_left_s=0.4) is None  # deadline
    # The last delivery JetStream will make never naks.
    tight = RetryPolicy(max_attempts=5, max_deliver=2, backoff_s=0.1, backoff_max_s=1)
    assert tight.retry_after(_failure(), attempt=2, time_left_s=60) is None


@pytest.mark.parametrize("text", ["hello", ' "quoted" \\ back', "naïve ✓ 日本", "\n\t\x01",
                                  ""])
def test_delta_encoder_matches_the_contract(text: str) -> None:
    encode = DeltaEncoder("org1", "turn-1").encode
    expected = Delta(org_id="org1", turn_id="turn-1", seq=42, text=text)
    assert Delta.model_validate_json(encode(42, text)) == expected
    if text.isascii() and text.isprintable():
        assert encode(42, text) == expected.model_dump_json().encode()


def test_settings_env_names_and_provider_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    monkeypatch.setenv("LLM_STREAM_ACK_WAIT_S", "3")
    monkeypatch.setenv("LLM_STREAM_MAX_PROVIDER_ATTEMPTS", "2")
    settings = Settings()
    assert settings.anthropic_api_key is None and not settings.use_anthropic()
    assert settings.ack_wait_s == 3 and settings.heartbeat_s == 1
    assert settings.max_provider_attempts == 2

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    settings = Settings()
    assert settings.use_anthropic() and settings.anthropic_base_url == "http://127.0.0.1:9"
    assert "sk-test" not in repr(settings)
    monkeypatch.setenv("LLM_STREAM_ANTHROPIC_API_KEY", "sk-prefixed")
    assert Settings().anthropic_api_key.get_secret_value() == "sk-prefixed"  # type: ignore[union-attr]
    assert not Settings(provider="local").use_anthropic()


def test_settings_refuse_inconsistent_bounds_and_placeholder_keys() -> None:
    with pytest.raises(ValueError, match="max_provider_attempts"):
        Settings(max_provider_attempts=6, max_deliver=5)
    with pytest.raises(ValueError, match="placeholder"):
        Settings(anthropic_api_key="changeme", environment="production", nats_user="llm_stream",
                 nats_password="p", valkey_password="v")


def test_local_window_drops_oldest_and_starts_with_user() -> None:
    msgs = [ChatMessage(role="user", content="a" * 50),
            ChatMessage(role="assistant", content="b" * 50),
            ChatMessage(role="user", content="c" * 10)]
    assert fit_window(msgs, 1000) == msgs
    assert fit_window(msgs, 70) == msgs[2:]
    assert fit_window(msgs, 1) == msgs[2:]  # the newest message always stays
