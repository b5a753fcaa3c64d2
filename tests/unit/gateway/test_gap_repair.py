"""After events of a turn are lost for good, the client still ends with the whole answer."""

from __future__ import annotations

import json

from switchboard_common.turns import Delta, TurnDone, TurnRetry, Usage
from switchboard_gateway.domain.turns import GapRepair, SeqFilter


def delta(seq: int, text: str) -> bytes:
    return Delta(org_id="o", turn_id="t", seq=seq, text=text).model_dump_json().encode()


def done(seq: int, text: str) -> bytes:
    return TurnDone(org_id="o", turn_id="t", seq=seq, model="m", provider="p",
                    stop_reason="end_turn", usage=Usage(), text=text).model_dump_json().encode()


def shown(frames: list[str]) -> str:
    text = ""
    for f in map(json.loads, frames):
        if f["type"] == "turn_retry":
            text = ""
        elif f["type"] == "delta":
            text += f["text"]
    return text


def run(events: list[bytes], gap_at: int | None) -> list[str]:
    seqs, repair, out = SeqFilter(), GapRepair(), []
    for i, data in enumerate(events):
        f = json.loads(data)
        if i == gap_at:
            assert seqs.gap_before(f["seq"])
            repair.start(seqs.last_seq)
        out += repair.frames(f["type"], f["seq"], data, seqs.accept(f["type"], f["seq"]))
    return out


def test_frames_pass_unchanged_without_a_gap() -> None:
    events = [delta(1, "Hel"), delta(2, "lo"), done(3, "Hello")]
    assert run(events, None) == [e.decode() for e in events]


def test_lost_deltas_come_back_whole_before_the_terminal_event() -> None:
    out = run([delta(1, "One "), delta(5, "four "), delta(6, "five"),
               done(7, "One two three four five")], gap_at=1)
    assert [json.loads(f)["type"] for f in out] == ["delta", "delta", "turn_completed"]
    assert [json.loads(f)["seq"] for f in out] == [1, 6, 7]
    assert shown(out) == "One two three four five"


def test_a_lost_retry_makes_the_client_start_again() -> None:
    retry = TurnRetry(org_id="o", turn_id="t", seq=3, attempt=2, reason="x")
    assert retry.seq == 3  # lost in the gap, like the deltas around it
    out = run([delta(1, "Draft "), delta(2, "one"), delta(6, "nal"), done(8, "Final")],
              gap_at=2)
    types = [json.loads(f)["type"] for f in out]
    assert types == ["delta", "delta", "turn_retry", "delta", "turn_completed"]
    seqs = [json.loads(f)["seq"] for f in out]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert shown(out) == "Final"
