"""The tool-use loop's state per turn in Valkey (`ctx:loop:{org}:{turn}:*`, expiring with the
turn):

- `meta`            autonomy policy, enabled tools and canary resolved when the turn started
- `taint`           set of untrusted sources that entered the turn's context so far
- `req:{i}`         the ModelRequest of iteration i, once its answer called tools
- `calls:{i}`       the tool calls of iteration i's answer (and its last seq), JSON
- `results:{i}`     hash tool_use_id -> ActionResult JSON: the first result per call wins
- `sent:{i}`        set once iteration i+1 was requested
- `text`, `usage`   hashes iteration -> text / usage of each model call (turn totals)

Everything is keyed by iteration, so a redelivered message recomputes exactly what it computed
the first time (and the next request's Nats-Msg-Id makes a second publish a no-op)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import redis.asyncio as redis

from switchboard_common.actions import ActionResult
from switchboard_common.model import ModelRequest, ModelResult, ToolCall
from switchboard_common.skills import Autonomy
from switchboard_common.turns import Usage


def _k(org: str, turn: str, part: str) -> str:
    return f"ctx:loop:{org}:{turn}:{part}"


class LoopMeta(NamedTuple):
    autonomy: Autonomy
    enabled: list[str]
    canary: str


class LoopState:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._r = client
        self._ttl = ttl_s

    async def start(self, result: ModelResult, meta: LoopMeta,
                    tainted_by: tuple[str, ...]) -> None:
        """The loop's meta and the taint it began with, with the model call it starts from
        (`record_call`), in one round trip."""
        org, turn = result.org_id, result.turn_id
        pipe = self._r.pipeline(transaction=False)
        pipe.set(_k(org, turn, "meta"), json.dumps(
            {"autonomy": meta.autonomy.model_dump(mode="json"), "enabled": meta.enabled,
             "canary": meta.canary}), ex=self._ttl)
        if tainted_by:
            self._add_taint(pipe, org, turn, tainted_by)
        self._record(pipe, result)
        await pipe.execute()

    async def meta(self, org: str, turn: str) -> LoopMeta | None:
        raw = await self._r.get(_k(org, turn, "meta"))
        if raw is None:
            return None
        data = json.loads(raw)
        return LoopMeta(Autonomy.model_validate(data["autonomy"]), list(data["enabled"]),
                        str(data.get("canary", "")))

    def _add_taint(self, pipe: Any, org: str, turn: str, sources: tuple[str, ...]) -> None:
        pipe.sadd(_k(org, turn, "taint"), *sources)
        pipe.expire(_k(org, turn, "taint"), self._ttl)

    async def add_taint(self, org: str, turn: str, sources: tuple[str, ...]) -> None:
        """Idempotent (a set): a redelivered result adds nothing new."""
        if sources:
            pipe = self._r.pipeline(transaction=False)
            self._add_taint(pipe, org, turn, sources)
            await pipe.execute()

    async def taint(self, org: str, turn: str) -> list[str]:
        return sorted(_s(m) for m in await self._r.smembers(_k(org, turn, "taint")))

    async def request(self, org: str, turn: str, iteration: int) -> ModelRequest | None:
        raw = await self._r.get(_k(org, turn, f"req:{iteration}"))
        return ModelRequest.model_validate_json(raw) if raw else None

    def _record(self, pipe: Any, result: ModelResult) -> None:
        org, turn, iteration = result.org_id, result.turn_id, str(result.iteration)
        for part, value in (("text", result.text), ("usage", result.usage.model_dump_json())):
            pipe.hset(_k(org, turn, part), iteration, value)
            pipe.expire(_k(org, turn, part), self._ttl)
        if result.request is not None:
            pipe.set(_k(org, turn, f"req:{iteration}"), result.request.model_dump_json(),
                     ex=self._ttl)

    async def record_call(self, result: ModelResult) -> tuple[str, Usage]:
        """One model call of the turn: its text and usage and, when it called tools, the
        request it answered (`ModelResult.request`: the loop continues from it). Returns the
        turn's totals with it, in the same round trip: the text of all its model calls (in
        order, one paragraph each: two calls must not read as one glued sentence) and their
        summed usage."""
        org, turn = result.org_id, result.turn_id
        pipe = self._r.pipeline(transaction=False)
        self._record(pipe, result)
        pipe.hgetall(_k(org, turn, "text"))
        pipe.hgetall(_k(org, turn, "usage"))
        *_, texts, usages = await pipe.execute()
        parts = (_s(texts[k]) for k in sorted(texts, key=lambda k: int(_s(k))))
        text = "\n\n".join(p for p in parts if p.strip())
        total: dict[str, int] = {}
        for raw in usages.values():
            for name, value in Usage.model_validate_json(raw).model_dump().items():
                total[name] = total.get(name, 0) + int(value)
        return text, Usage(**total)

    async def save_calls(self, org: str, turn: str, iteration: int, calls: list[ToolCall],
                         text: str, last_seq: int) -> None:
        await self._r.set(_k(org, turn, f"calls:{iteration}"), json.dumps({
            "calls": [c.model_dump() for c in calls], "text": text, "last_seq": last_seq}),
            ex=self._ttl)

    async def calls(self, org: str, turn: str, iteration: int
                    ) -> tuple[list[ToolCall], str, int] | None:
        raw = await self._r.get(_k(org, turn, f"calls:{iteration}"))
        if raw is None:
            return None
        data = json.loads(raw)
        return ([ToolCall.model_validate(c) for c in data["calls"]], data["text"],
                int(data["last_seq"]))

    async def add_result(self, result: ActionResult) -> dict[str, ActionResult]:
        """Keep the first result per call of that iteration; all results so far."""
        key = _k(result.org_id, result.turn_id, f"results:{result.iteration}")
        pipe = self._r.pipeline(transaction=False)
        pipe.hsetnx(key, result.tool_use_id, result.model_dump_json())
        pipe.expire(key, self._ttl)
        pipe.hgetall(key)
        _, _, raw = await pipe.execute()
        return {_s(k): ActionResult.model_validate_json(v) for k, v in raw.items()}

    async def results(self, org: str, turn: str, iterations: int) -> list[ActionResult]:
        """The first result of every call of iterations 0..iterations-1, in call order."""
        pipe = self._r.pipeline(transaction=False)
        for i in range(iterations):
            pipe.get(_k(org, turn, f"calls:{i}"))
            pipe.hgetall(_k(org, turn, f"results:{i}"))
        replies = await pipe.execute()
        out: list[ActionResult] = []
        for raw_calls, raw_results in zip(replies[::2], replies[1::2], strict=True):
            if raw_calls is None:
                continue
            got = {_s(k): ActionResult.model_validate_json(v) for k, v in raw_results.items()}
            out += [got[c["id"]] for c in json.loads(raw_calls)["calls"] if c["id"] in got]
        return out

    async def mark_sent(self, org: str, turn: str, iteration: int) -> None:
        await self._r.set(_k(org, turn, f"sent:{iteration}"), "1", ex=self._ttl)

    async def was_sent(self, org: str, turn: str, iteration: int) -> bool:
        return bool(await self._r.exists(_k(org, turn, f"sent:{iteration}")))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
