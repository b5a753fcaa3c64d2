"""Autonomy that learns: the decision history per client x tool, the confidence calibrated by
it, and suggested autonomy changes (never applied without a person's click).

History (Valkey, written by the action_executor, read by the gateway's REST):
- `learn:{org}:{client}:{tool}` hash of counts per outcome, since the beginning;
- `learn:{org}:{client}:{tool}:recent` list of the last `WINDOW` outcomes, newest first;
- `learn:{org}:{client}:tools` set of tools with a history.
Outcomes: `approved` (unchanged), `edited` (approved with edits), `rejected`, `expired`,
`alone` (ran without approval), `undone` (an executed action a user reverted with
`POST /v1/actions/{id}/undo`: it takes the place of that action's `alone`, `approved` or
`edited` in the recent window, so an undo turns one success into a failure).

Calibration (a Beta prior per client x tool): the model's own confidence `c` is the prior,
worth `PRIOR_WEIGHT` decisions: Beta(alpha0 = k*c, beta0 = k*(1-c)). Each of the recent
decisions updates it: approved or ran alone = one success, rejected, expired or undone = one
failure, approved with edits = half of each. The calibrated confidence is the posterior mean

    calibrated = (k*c + successes) / (k + successes + failures)

so with no history it equals the model's, 20 unchanged approvals lift 0.80 to 0.93, and 20
rejections pull it to 0.27. Only the last `WINDOW` decisions count, so it follows a change in
how the user decides. The policy decides on the calibrated value; both are on the card.

Suggestions (pure, on read): `SUGGEST_MIN` or more recent decisions, every one approved
unchanged, while the tool cannot run alone -> let it (`mode: automate` for that tool only);
mostly rejected or expired (>= 80%) while it may run alone -> back to `suggest` for that tool.
"""

from __future__ import annotations

from typing import Any, Literal

import redis.asyncio as redis
from pydantic import BaseModel, ConfigDict

from switchboard_common.skills import Autonomy

Outcome = Literal["approved", "edited", "rejected", "expired", "alone", "undone"]
OUTCOMES: tuple[Outcome, ...] = ("approved", "edited", "rejected", "expired", "alone", "undone")
WINDOW = 20
PRIOR_WEIGHT = 10.0
SUGGEST_MIN = 10
REJECT_SHARE = 0.8
_SUCCESS = {"approved": 1.0, "alone": 1.0, "edited": 0.5}
_FAILURE = {"rejected": 1.0, "expired": 1.0, "undone": 1.0, "edited": 0.5}


class ToolHistory(BaseModel):
    model_config = ConfigDict(frozen=True)

    tool: str
    counts: dict[str, int]
    recent: list[Outcome]
    """Newest first, at most WINDOW."""

    @property
    def evidence(self) -> tuple[float, float]:
        return (sum(_SUCCESS.get(o, 0.0) for o in self.recent),
                sum(_FAILURE.get(o, 0.0) for o in self.recent))


def calibrate(raw: float | None, history: ToolHistory | None) -> float | None:
    """The posterior mean described in the module docstring; None/out-of-range stays as is
    (the policy asks for details then)."""
    if raw is None or not 0.0 <= raw <= 1.0 or history is None:
        return raw
    success, failure = history.evidence
    return round((PRIOR_WEIGHT * raw + success) / (PRIOR_WEIGHT + success + failure), 4)


class Suggestion(BaseModel):
    model_config = ConfigDict(frozen=True)

    tool: str
    direction: Literal["more", "less"]
    text: str
    patch: dict[str, Any]
    """The client-tier skills change that accepting applies (merged into the client layer)."""


def suggest(history: ToolHistory, autonomy: Autonomy, client_name: str) -> Suggestion | None:
    decided = [o for o in history.recent if o not in ("alone", "undone")]
    limits = autonomy.thresholds(history.tool)
    mode = limits.mode or autonomy.mode
    keep = {"auto_execute": limits.auto_execute, "require_approval": limits.require_approval}
    if (len(decided) >= SUGGEST_MIN and all(o == "approved" for o in decided)
            and mode != "automate"):
        return Suggestion(
            tool=history.tool, direction="more",
            text=f"You approved {len(decided)} of the last {len(decided)} {history.tool} "
                 f"proposals for {client_name} unchanged: let the assistant do these on its "
                 "own?",
            patch={"autonomy": {"actions": {history.tool: {**keep, "mode": "automate"}}}})
    failed = sum(1 for o in history.recent if o in ("rejected", "expired", "undone"))
    if (len(history.recent) >= SUGGEST_MIN // 2 and failed >= REJECT_SHARE * len(history.recent)
            and mode != "suggest"):
        return Suggestion(
            tool=history.tool, direction="less",
            text=f"{failed} of the last {len(history.recent)} {history.tool} actions for "
                 f"{client_name} were rejected, expired or undone: ask before each one again?",
            patch={"autonomy": {"actions": {history.tool: {**keep, "mode": "suggest"}}}})
    return None


class ToolLearning(BaseModel):
    """`GET /v1/clients/<c>/autonomy/learning`: one entry per tool with a history."""

    tool: str
    counts: dict[str, int]
    recent: list[Outcome]
    successes: float
    failures: float
    calibrated_at: dict[str, float | None]
    """What the policy would use for a few raw confidences ("0.7", "0.8", "0.9")."""
    suggestion: Suggestion | None = None


def learning_of(history: ToolHistory, autonomy: Autonomy, client_name: str) -> ToolLearning:
    success, failure = history.evidence
    return ToolLearning(
        tool=history.tool, counts=history.counts, recent=history.recent, successes=success,
        failures=failure,
        calibrated_at={str(c): calibrate(c, history) for c in (0.7, 0.8, 0.9)},
        suggestion=suggest(history, autonomy, client_name))


def _key(org: str, client: str, *parts: str) -> str:
    return ":".join(("learn", org, client, *parts))


class LearningStore:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    async def record(self, org: str, client: str, tool: str, outcome: Outcome) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.hincrby(_key(org, client, tool), outcome, 1)
        pipe.lpush(_key(org, client, tool, "recent"), outcome)
        pipe.ltrim(_key(org, client, tool, "recent"), 0, WINDOW - 1)
        pipe.sadd(_key(org, client, "tools"), tool)
        await pipe.execute()

    async def revise(self, org: str, client: str, tool: str, was: Outcome, now: Outcome
                     ) -> None:
        """An outcome turned out otherwise (an action that ran was undone): `now` takes the
        place of one `was` in the recent window (of one tool they are alike; none left there:
        `now` is simply added) and is counted; the count of `was` stays (it did happen)."""
        recent = _key(org, client, tool, "recent")
        pipe = self._r.pipeline(transaction=True)
        pipe.lrem(recent, 1, was)
        pipe.hincrby(_key(org, client, tool), now, 1)
        pipe.lpush(recent, now)
        pipe.ltrim(recent, 0, WINDOW - 1)
        pipe.sadd(_key(org, client, "tools"), tool)
        await pipe.execute()

    async def history(self, org: str, client: str, tool: str) -> ToolHistory | None:
        pipe = self._r.pipeline(transaction=False)
        pipe.hgetall(_key(org, client, tool))
        pipe.lrange(_key(org, client, tool, "recent"), 0, WINDOW - 1)
        counts, recent = await pipe.execute()
        if not counts:
            return None
        return ToolHistory(tool=tool, counts={_text(k): int(v) for k, v in counts.items()},
                           recent=[_text(o) for o in recent])

    async def all(self, org: str, client: str) -> list[ToolHistory]:
        tools = sorted(_text(t) for t in await self._r.smembers(_key(org, client, "tools")))
        found = [await self.history(org, client, t) for t in tools]
        return [h for h in found if h is not None]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
