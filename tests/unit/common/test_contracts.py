from datetime import timedelta

import pytest
from pydantic import ValidationError

from switchboard_common.envelope import SCHEMA_VERSION, utcnow
from switchboard_common.streams import ALL_STREAMS, TURNS, ConsumerSpec
from switchboard_common.turns import (
    STREAM_EVENT,
    Delta,
    TurnRequest,
    turn_events_subject,
    turn_msg_id,
)


def test_every_message_carries_org_and_schema_version_and_no_trace_in_the_body() -> None:
    req = TurnRequest(org_id="acme", turn_id="t1", user_id="u1", client_id="c1", text="hi",
                      idempotency_key="k", deadline_at=utcnow() + timedelta(seconds=5))
    data = req.model_dump()
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["org_id"] == "acme" and data["message_id"]
    # Trace context travels in NATS headers (FastStream's telemetry middleware).
    assert "trace" not in data
    old = {**data, "trace": {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}}
    assert TurnRequest.model_validate(old).turn_id == "t1"  # an older producer still parses


@pytest.mark.parametrize("bad", ["a.b", "a*", ">", "", "x" * 65, "with space"])
def test_ids_that_would_break_subjects_are_rejected(bad: str) -> None:
    with pytest.raises(ValidationError):
        TurnRequest(org_id=bad, turn_id="t1", user_id="u1", client_id="c1", text="hi",
                    idempotency_key="k", deadline_at=utcnow())


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    raw = Delta(org_id="o", turn_id="t", seq=1, text="x").model_dump()
    raw["added_later"] = True
    parsed = STREAM_EVENT.validate_python(raw)
    assert isinstance(parsed, Delta) and parsed.seq == 1


def test_idempotency_key_maps_to_one_msg_id_per_user() -> None:
    assert turn_msg_id("o", "u", "k") == turn_msg_id("o", "u", "k")
    assert turn_msg_id("o", "u", "k") != turn_msg_id("o", "u2", "k")
    assert turn_events_subject("o", "t") == "turns.events.o.t"


def test_streams_declare_explicit_bounds() -> None:
    names = [s.name for s in ALL_STREAMS]
    assert len(names) == len(set(names))
    for spec in ALL_STREAMS:
        cfg = spec.config()
        assert cfg.retention is not None and cfg.storage is not None and cfg.max_age
    consumer = ConsumerSpec(TURNS, "context-turns", "turns.requested.>", ack_wait_s=3,
                            max_deliver=4).config()
    assert consumer.ack_wait == 3 and consumer.max_deliver == 4 and consumer.durable_name
