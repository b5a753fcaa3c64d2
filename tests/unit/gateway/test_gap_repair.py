"""After events of a turn are lost for good, the client still ends with the whole answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from switchboard_common.envelope import utcnow
from switchboard_common.turns import Delta, TurnDone, TurnRetry, Usage
from switchboard_gateway.domain.turns import GapRepair, SeqFilter, TurnRecord
from switchboard_gateway.handlers.turns import TurnRelay


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


class _Msg:
    def __init__(self, data: bytes) -> None:
        self.data = data


class _Sub:
    async def unsubscribe(self) -> None:
        pass


class _Bus:
    """Live events by callback, kept events by replay: enough of TurnBus for a relay."""

    def __init__(self, kept: list[bytes]) -> None:
        self.kept = kept
        self.live: Any = None

    async def follow(self, subject: str, cb: Any) -> _Sub:
        self.live = cb
        return _Sub()

    async def publish_turn(self, request: Any) -> bool:
        return True

    async def replay(self, subject: str) -> AsyncIterator[list[bytes]]:
        yield list(self.kept)


class _Out:
    def __init__(self) -> None:
        self.frames: list[str] = []

    def send(self, text: str) -> None:
        self.frames.append(text)


async def _relay_with_gap(kept: list[bytes]) -> list[str]:
    bus, out = _Bus(kept), _Out()
    record = TurnRecord(turn_id="t", org="o", user="u", client_id="c", conversation_id="main",
                        deadline_at=utcnow() + timedelta(seconds=5))
    relay = TurnRelay(bus, record, out)  # type: ignore[arg-type]
    task = asyncio.create_task(relay.run(first_frame=None, request=object()))  # type: ignore[arg-type]
    while bus.live is None:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    for data in (delta(1, "One "), delta(4, "four"), done(5, "One two three four")):
        await bus.live(_Msg(data))  # 2 and 3 never arrive live
    await asyncio.wait_for(task, 5)
    return out.frames


async def test_a_gap_is_refilled_from_the_kept_events() -> None:
    kept = [delta(1, "One "), delta(2, "two "), delta(3, "three "), delta(4, "four")]
    frames = await _relay_with_gap(kept)
    assert [json.loads(f)["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert shown(frames) == "One two three four"


async def test_a_gap_the_kept_events_lack_is_sent_whole_at_the_end() -> None:
    frames = await _relay_with_gap([delta(1, "One ")])  # the memory stream lost the rest
    assert [json.loads(f)["seq"] for f in frames] == [1, 4, 5]
    assert shown(frames) == "One two three four"


async def test_kept_events_that_start_after_the_gap_do_not_hide_it() -> None:
    # SB_TURN_EVENTS was declared again mid-turn (a NATS restart): it holds only what came
    # after, so the refill cannot fill the gap either.
    frames = await _relay_with_gap([delta(4, "four")])
    assert [json.loads(f)["seq"] for f in frames] == [1, 4, 5]
    assert shown(frames) == "One two three four"


async def test_a_resume_the_kept_events_cannot_serve_starts_the_client_again() -> None:
    # The client showed "One two " (seq 1-2) through a gateway that died; the events kept
    # since start at 4. Its text is not known here: a turn_retry, then the whole answer.
    bus, out = _Bus([delta(4, "four"), done(5, "One two three four")]), _Out()
    record = TurnRecord(turn_id="t", org="o", user="u", client_id="c", conversation_id="main",
                        deadline_at=utcnow() + timedelta(seconds=5))
    await asyncio.wait_for(TurnRelay(bus, record, out, last_seq=2).run(  # type: ignore[arg-type]
        first_frame=None), 5)
    assert [json.loads(f)["type"] for f in out.frames] == ["turn_retry", "delta",
                                                           "turn_completed"]
    seqs = [json.loads(f)["seq"] for f in out.frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > 2
    assert shown(out.frames) == "One two three four"


async def test_an_event_stored_after_the_replay_read_it_is_not_missed() -> None:
    # Published before the live subscription reached the server and stored in the stream
    # just after the replay looked: neither path carried it, and no later event came yet.
    class _LateBus(_Bus):
        reads = 0

        async def replay(self, subject: str) -> AsyncIterator[list[bytes]]:
            self.reads += 1
            yield [] if self.reads == 1 else list(self.kept)

    bus, out = _LateBus([delta(1, "Monday ")]), _Out()
    record = TurnRecord(turn_id="t", org="o", user="u", client_id="c", conversation_id="main",
                        deadline_at=utcnow() + timedelta(seconds=5))
    task = asyncio.create_task(TurnRelay(bus, record, out).run(  # type: ignore[arg-type]
        first_frame=None))
    async with asyncio.timeout(3):
        while not out.frames:
            await asyncio.sleep(0.01)
    assert shown(out.frames) == "Monday " and bus.reads == 2
    await bus.live(_Msg(done(2, "Monday ")))
    await asyncio.wait_for(task, 5)
    assert [json.loads(f)["seq"] for f in out.frames] == [1, 2]


async def _relay_live(events: list[bytes], last_seq: int = 0) -> list[str]:
    bus, out = _Bus([]), _Out()
    record = TurnRecord(turn_id="t", org="o", user="u", client_id="c", conversation_id="main",
                        deadline_at=utcnow() + timedelta(seconds=5))
    task = asyncio.create_task(TurnRelay(bus, record, out, last_seq=last_seq).run(  # type: ignore[arg-type]
        first_frame=None))
    while bus.live is None:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    for data in events:
        await bus.live(_Msg(data))
    await asyncio.wait_for(task, 5)
    return out.frames


async def test_an_end_numbered_inside_the_text_sent_still_ends_the_turn() -> None:
    # Two attempts streamed at once (a redelivery while NATS was away): the first to end
    # numbered its turn_completed 4, after the other attempt's deltas had reached seq 5.
    frames = await _relay_live([delta(1, "Mo"), delta(2, "Mon"), delta(3, "nday"),
                                delta(4, "day"), delta(5, " at"), done(4, "Monday at 9")])
    assert [json.loads(f)["type"] for f in frames][-3:] == ["turn_retry", "delta",
                                                            "turn_completed"]
    seqs = [json.loads(f)["seq"] for f in frames]
    assert seqs == [1, 2, 3, 4, 5, 6, 7, 8]
    assert shown(frames) == "Monday at 9"


async def test_an_end_the_client_had_before_it_resumed_is_not_sent_again() -> None:
    assert await _relay_live([delta(3, "day"), done(4, "Monday")], last_seq=4) == []


def retry(seq: int, attempt: int) -> bytes:
    return TurnRetry(org_id="o", turn_id="t", seq=seq, attempt=attempt,
                     reason="redelivered").model_dump_json().encode()


async def test_an_attempt_numbering_inside_the_text_sent_makes_the_client_start_again() -> None:
    # Attempt 2 read the last event from a stream NATS had lost and started at seq 1.
    frames = await _relay_live([delta(1, "Tues"), delta(2, "day "), delta(3, "at 9"),
                                retry(1, 2), delta(2, "Mon"), delta(3, "day "), delta(4, "at"),
                                delta(5, " 10"), done(6, "Monday at 10")])
    seqs = [json.loads(f)["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert shown(frames) == "Monday at 10"


async def test_a_retry_seen_twice_is_not_a_new_attempt() -> None:
    frames = await _relay_live([delta(1, "Tues"), retry(2, 2), retry(2, 2), delta(3, "Mon"),
                                done(4, "Mon")])
    assert [json.loads(f)["seq"] for f in frames] == [1, 2, 3, 4]
    assert shown(frames) == "Mon"
