"""The token hot path's encoder. Every piece of text becomes one `turns.Delta` on the wire;
building and dumping a pydantic model per token costs several times more than splicing the
per-turn constant prefix with the seq and the JSON-escaped text. The bytes decode to exactly
`Delta(org_id, turn_id, seq, text)` (a unit test holds this against the model)."""

from __future__ import annotations

import json

from switchboard_common.turns import Delta

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class DeltaEncoder:
    __slots__ = ("_prefix",)

    def __init__(self, org_id: str, turn_id: str) -> None:
        head = Delta(org_id=org_id, turn_id=turn_id, seq=0, text="").model_dump_json()
        # Field order is the model's (v, org_id, turn_id, type, seq, text): cut before seq.
        self._prefix = head[: head.index('"seq":') + len('"seq":')]

    def encode(self, seq: int, text: str) -> bytes:
        return f'{self._prefix}{seq},"text":{_dumps(text)}}}'.encode()
