"""Turn bookkeeping the gateway keeps (pure): who owns a turn, and which events of a turn a
socket still has to see."""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from switchboard_common.envelope import Id
from switchboard_common.turns import TERMINAL_TYPES, Delta, TurnRetry


class TurnRecord(BaseModel):
    """Stored with the turn (`turn:{turn_id}` in Valkey): resume and duplicates are only
    served to the (org, user) that started the turn, and keep the turn's original deadline."""

    model_config = ConfigDict(frozen=True)

    turn_id: Id
    org: Id
    user: Id
    client_id: Id
    conversation_id: Id
    deadline_at: datetime


class SeqFilter:
    """Decides, event by event, what a socket is sent for one turn.

    A turn's events can reach the gateway twice: replayed from SB_TURN_EVENTS and live from
    core NATS (the live subscription starts first, so the two overlap). `seq` grows by one per
    event across attempts, so "forward only seq > last sent" removes the overlap and honours
    a resuming client's `last_seq`. Events without a seq (seq 0) carry no position and pass,
    unless the turn already ended. The first terminal event ends the turn, even one the client
    already has (it resumed after seeing it): then nothing more is sent and the relay stops."""

    __slots__ = ("_attempt", "_resumed_at", "finished", "last_seq")

    def __init__(self, last_seq: int = 0) -> None:
        self.last_seq = last_seq
        self._resumed_at = last_seq
        self._attempt = 1
        self.finished = False

    def accept(self, kind: str, seq: int) -> bool:
        if self.finished:
            return False
        fresh = seq <= 0 or seq > self.last_seq
        if seq > self.last_seq:
            self.last_seq = seq
        if kind in TERMINAL_TYPES:
            self.finished = True
        return fresh

    def overtaken_end(self, kind: str, seq: int) -> bool:
        """A terminal event numbered at or before an event this socket was sent (not one the
        client had before it resumed): two attempts of the turn streamed at once (a
        redelivery while NATS was away), and the one that ended first numbered its end
        inside the other's text. Dropped as old, it would leave the client waiting; see
        `overtaken_end_frames`."""
        return kind in TERMINAL_TYPES and self._inside_sent(seq)

    def renumbered_retry(self, seq: int, attempt: int) -> bool:
        """A `turn_retry` of a new attempt numbered at or before an event this socket was
        sent: that attempt read the turn's last event from a stream that had lost it (a
        restarted NATS) and numbers its text inside the text already sent, so where the
        client's text stands is unknown (see `GapRepair`). The same retry seen twice (replayed
        and live) is not new."""
        new = attempt > self._attempt
        self._attempt = max(self._attempt, attempt)
        return new and self._inside_sent(seq)

    @property
    def resumed(self) -> bool:
        """The client shows text sent before this filter (it resumed from a `last_seq`)."""
        return self._resumed_at > 0

    def _inside_sent(self, seq: int) -> bool:
        """`seq` is one this socket was sent (not one the client had before it resumed)."""
        return not self.finished and self._resumed_at < seq <= self.last_seq

    def gap_before(self, seq: int) -> bool:
        """Whether events are missing between the last one sent and `seq`."""
        return not self.finished and seq > self.last_seq + 1


class GapRepair:
    """What a socket gets after events of its turn were lost and could not be refilled from
    the kept events: deltas are held back, and the terminal `turn_completed` (whose `text` is
    the whole answer) is preceded by one `delta` carrying the part of the answer the client
    has not shown (a `turn_retry` first if what it has shown is not a prefix of the answer).
    So no gap reaches a client silently. Until a gap, frames pass unchanged."""

    __slots__ = ("_known", "_last_sent", "_shown", "active")

    def __init__(self) -> None:
        self.active = False
        self._last_sent = 0
        self._known = True
        self._shown: list[bytes] = []
        """Deltas sent since the last turn_retry (raw), to know what the client shows."""

    def start(self, last_sent: int, *, shown_known: bool = True) -> None:
        """`shown_known`: False when the client showed text this relay did not send (it
        resumed from a `last_seq`): then it starts again from a `turn_retry`."""
        self.active = True
        self._last_sent = last_sent
        self._known = shown_known

    def frames(self, kind: str, seq: int, data: bytes, fresh: bool) -> list[str]:
        if not fresh:
            return []
        if not self.active:
            if kind == "delta":
                self._shown.append(data)
            elif kind == "turn_retry":
                self._shown.clear()
            return [data.decode()]
        if kind in ("delta", "turn_retry"):
            return []  # the terminal event brings the text
        if kind != "turn_completed":
            return [data.decode()]
        done = json.loads(data)
        shown = "".join(json.loads(d)["text"] for d in self._shown)
        full: str = done.get("text", "")
        frames: list[str] = []
        rest_seq = seq - 1
        if not self._known or not full.startswith(shown):
            retry_seq = max(self._last_sent + 1, seq - 2)
            frames.append(TurnRetry(org_id=done["org_id"], turn_id=done["turn_id"],
                                    seq=retry_seq, attempt=0, reason="stream_gap"
                                    ).model_dump_json())
            shown = ""
            rest_seq = max(rest_seq, retry_seq + 1)
        if full[len(shown):] and rest_seq < seq:
            frames.append(Delta(org_id=done["org_id"], turn_id=done["turn_id"], seq=rest_seq,
                                text=full[len(shown):]).model_dump_json())
        return [*frames, data.decode()]


def overtaken_end_frames(kind: str, data: bytes, last_sent: int) -> list[str]:
    """How an overtaken terminal event (`SeqFilter.overtaken_end`) still ends the turn, in
    seq order after `last_sent`: an error as it is; a `turn_completed` after a `turn_retry`
    and its whole answer as one delta, since the text shown came from two attempts."""
    event = json.loads(data)
    frames: list[str] = []
    seq = last_sent
    if kind == "turn_completed":
        seq += 1
        frames.append(TurnRetry(org_id=event["org_id"], turn_id=event["turn_id"], seq=seq,
                                attempt=0, reason="stream_gap").model_dump_json())
        if text := event.get("text"):
            seq += 1
            frames.append(Delta(org_id=event["org_id"], turn_id=event["turn_id"], seq=seq,
                                text=text).model_dump_json())
    event["seq"] = seq + 1
    frames.append(json.dumps(event, separators=(",", ":")))
    return frames


def retry_attempt(data: bytes) -> int:
    """The attempt a raw `turn_retry` announces (0 when unreadable)."""
    try:
        return int(json.loads(data).get("attempt") or 0)
    except (ValueError, TypeError, AttributeError):
        return 0
