"""The turn's client stream as llm_stream sees it: where the last attempt left off.

`turns.events.<org>.<turn>` is captured by the SB_TURN_EVENTS stream (memory, bounded,
expiring), so any replica handling a redelivery reads the last event sent for the turn and
continues its sequence: seq numbers are never reused, even after a crash."""

from __future__ import annotations

import json
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from switchboard_common.streams import TURN_EVENTS
from switchboard_common.turns import TERMINAL_TYPES


@dataclass(frozen=True)
class LastEvent:
    seq: int = 0
    type: str | None = None

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES


async def last_event(js: JetStreamContext, subject: str) -> LastEvent:
    try:
        msg = await js.get_last_msg(TURN_EVENTS.name, subject)
    except NotFoundError:
        return LastEvent()
    try:
        event = json.loads(msg.data or b"{}")
    except ValueError:
        return LastEvent()
    return LastEvent(seq=int(event.get("seq") or 0), type=event.get("type"))
