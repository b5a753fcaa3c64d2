"""Client frame parsing and validation (pure)."""

from __future__ import annotations

import json

import pytest

from switchboard_common.errors import ErrorCode
from switchboard_gateway.domain.protocol import (
    Cancel,
    ErrorFrame,
    ProtocolError,
    Resume,
    UserMessage,
    Watch,
    parse_client_message,
    peek_event,
)

LIMIT = 1000


def parse(obj: object) -> object:
    return parse_client_message(json.dumps(obj), LIMIT)


def refused(raw: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw, LIMIT)
    return info.value


def test_user_message_parses_with_optional_conversation() -> None:
    msg = parse({"type": "user_message", "client_id": "sarah", "text": "hi",
                 "idempotency_key": "k-1", "extra": "ignored"})
    assert msg == UserMessage(type="user_message", client_id="sarah", text="hi",
                              idempotency_key="k-1")
    assert isinstance(msg, UserMessage) and msg.conversation_id is None


def test_resume_parses_and_defaults_last_seq() -> None:
    assert parse({"type": "resume", "turn_id": "t1"}) == Resume(type="resume", turn_id="t1",
                                                                 last_seq=0)


@pytest.mark.parametrize("raw", ["{", "", "nope", b"\xff\xfe"])
def test_malformed_json(raw: str | bytes) -> None:
    assert refused(raw).code is ErrorCode.INVALID_JSON


def test_unknown_type_is_named() -> None:
    err = refused(json.dumps({"type": "shout"}))
    assert err.code is ErrorCode.UNKNOWN_TYPE and "user_message" in err.message


@pytest.mark.parametrize(("obj", "field"), [
    ({"client_id": "a"}, "type"),
    ({"type": "user_message", "text": "x", "idempotency_key": "k"}, "client_id"),
    ({"type": "user_message", "client_id": "a", "idempotency_key": "k"}, "text"),
    ({"type": "user_message", "client_id": "a", "text": "", "idempotency_key": "k"}, "text"),
    ({"type": "user_message", "client_id": "a", "text": "x"}, "idempotency_key"),
    ({"type": "user_message", "client_id": "a.b", "text": "x", "idempotency_key": "k"},
     "client_id"),
    ({"type": "user_message", "client_id": "a", "conversation_id": "c*", "text": "x",
      "idempotency_key": "k"}, "conversation_id"),
    ({"type": "user_message", "client_id": "a", "text": "x", "idempotency_key": "k" * 65},
     "idempotency_key"),
    ({"type": "resume", "turn_id": "t>"}, "turn_id"),
    ({"type": "resume", "turn_id": "t", "last_seq": -1}, "last_seq"),
    ({"type": "resume", "turn_id": "t", "last_seq": "many"}, "last_seq"),
])
def test_invalid_message_names_the_field(obj: dict[str, object], field: str) -> None:
    err = refused(json.dumps(obj))
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert err.message.startswith(field + ":") or f"; {field}:" in err.message, err.message


@pytest.mark.parametrize("raw", ["[1]", "42", '"user_message"', "null"])
def test_non_object_json_is_invalid_message(raw: str) -> None:
    assert refused(raw).code is ErrorCode.INVALID_MESSAGE


def test_errors_never_echo_the_content() -> None:
    secret = "top-secret-words"
    for obj in ({"type": "user_message", "client_id": secret + ".", "text": secret,
                 "idempotency_key": "k"},
                {"type": "resume", "turn_id": secret, "last_seq": secret}):
        err = refused(json.dumps(obj))
        assert secret not in err.message and secret not in err.frame("org")


def test_text_over_limit_is_too_large_and_counts_bytes() -> None:
    base = {"type": "user_message", "client_id": "a", "idempotency_key": "key9"}
    assert isinstance(parse({**base, "text": "x" * LIMIT}), UserMessage)
    err = refused(json.dumps({**base, "text": "é" * (LIMIT // 2 + 1)}))  # 2 bytes each
    assert err.code is ErrorCode.MESSAGE_TOO_LARGE and err.idempotency_key == "key9"


def test_huge_frame_is_refused_before_parsing() -> None:
    err = refused("{" * 100_000)  # would be invalid JSON if it were parsed
    assert err.code is ErrorCode.MESSAGE_TOO_LARGE


def test_invalid_message_keeps_a_readable_idempotency_key() -> None:
    err = refused(json.dumps({"type": "user_message", "text": "x", "idempotency_key": "k7"}))
    assert err.idempotency_key == "k7"
    assert refused(json.dumps({"type": "user_message", "idempotency_key": 5})
                   ).idempotency_key is None


def test_error_frame_shape() -> None:
    frame = json.loads(ProtocolError(ErrorCode.INVALID_JSON, "frame is not valid JSON")
                       .frame("acme"))
    assert frame == {"type": "error", "v": 1, "org_id": "acme", "turn_id": None, "seq": 0,
                     "code": "invalid_json", "message": "frame is not valid JSON",
                     "retryable": False, "idempotency_key": None, "action_id": None,
                     "retry_after_s": None}
    assert ErrorFrame.model_validate(frame).code is ErrorCode.INVALID_JSON


def test_peek_event() -> None:
    assert peek_event(b'{"type":"delta","seq":3,"text":"x"}') == ("delta", 3)
    assert peek_event(b'{"type":"turn_started","turn_id":"t"}') == ("turn_started", 0)
    for bad in (b"[]", b'{"seq": 1}', b'{"type": "delta", "seq": "1"}', b"nope"):
        with pytest.raises(ValueError):
            peek_event(bad)


def test_frames_nested_too_deep_are_refused_before_parsing() -> None:
    deep = '{"type": "resume", "turn_id": "t", "x": ' + "[" * 500 + "]" * 500 + "}"
    assert refused(deep).code is ErrorCode.TOO_DEEP
    # Brackets inside strings do not count.
    fine = json.dumps({"type": "resume", "turn_id": "t", "x": "[" * 500})
    assert parse_client_message(fine, 16 * 1024).type == "resume"


def test_cancel_and_watch_frames_parse() -> None:
    cancel = parse_client_message('{"type": "cancel", "turn_id": "t1"}', 1024)
    assert isinstance(cancel, Cancel) and cancel.turn_id == "t1"
    watch = parse_client_message(
        '{"type": "watch", "client_id": "sarah", "conversation_id": "main"}', 1024)
    assert isinstance(watch, Watch) and (watch.client_id, watch.conversation_id) == (
        "sarah", "main")
    with pytest.raises(ProtocolError) as err:
        parse_client_message('{"type": "cancel"}', 1024)
    assert err.value.code is ErrorCode.INVALID_MESSAGE and "turn_id" in err.value.message
