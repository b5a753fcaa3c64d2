"""Turn bookkeeping the gateway keeps (pure): who owns a turn, and which events of a turn a
socket still has to see."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from switchboard_common.envelope import Id
from switchboard_common.turns import TERMINAL_TYPES


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

    __slots__ = ("finished", "last_seq")

    def __init__(self, last_seq: int = 0) -> None:
        self.last_seq = last_seq
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
