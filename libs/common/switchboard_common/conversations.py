"""Conversation storage in Valkey: written by context (the owner), read by the gateway's
listing endpoints.

Per conversation `c = conv:{org}:{user}:{client}:{conversation}`:
- `{c}:messages`  list of ChatMessage JSON, oldest first: what prompts are built from
- `{c}:turns`     list of TurnRecord JSON, oldest first: the full history, never trimmed
- `{c}:done`      set of turn ids already appended (exactly-once append)
- `{c}:summary`   Summary JSON: the model's summary of messages[0:covers]
- `{c}:taint`     untrusted sources earlier turns read (expiring; later turns inherit them)
- `{c}:outcomes`  the last few outcomes of actions decided after their turn had ended, newest
                  first (so the next prompt knows an approved mail went out)
Per (org, user, client): `convs:{org}:{user}:{client}` sorted set conversation -> last activity,
`convtitles:{org}:{user}:{client}` hash conversation -> the title the user gave it.
Usage counters: `usage:{org}`, `usage:{org}:user:{user}`, `usage:{org}:client:{client}` hashes,
and `usage:{org}:month:{YYYY-MM}` (the monthly token budget's count; see docs/security.md),
`usage:{org}:day:{YYYY-MM-DD}` and `usage:{org}:client:{client}:day:{YYYY-MM-DD}` (usage over
time, kept 400 days).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import redis.asyncio as redis
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from switchboard_common.envelope import utcnow
from switchboard_common.model import ChatMessage
from switchboard_common.turns import Usage

_MESSAGES = TypeAdapter(list[ChatMessage])
"""A conversation's stored messages parsed in one call (half the cost of one call each)."""


def _parse_messages(raw: list[Any]) -> list[ChatMessage]:
    return _MESSAGES.validate_json(
        b"[" + b",".join(i if isinstance(i, bytes) else str(i).encode() for i in raw) + b"]")

OUTCOMES_KEPT = 5

USAGE_FIELDS = ("turns", "input_tokens", "output_tokens", "cache_read_input_tokens",
                "cache_creation_input_tokens", "cost_microusd")

# The membership check, both message pushes, the turn record, the index and the usage
# counters change together or not at all: a redelivered result can never count twice.
_APPEND = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2], ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
for i = 5, #KEYS do
  for j = 0, 5 do
    redis.call('HINCRBY', KEYS[i], ARGV[7 + j * 2], ARGV[8 + j * 2])
  end
  if string.find(KEYS[i], ':day:', 1, true) then redis.call('EXPIRE', KEYS[i], ARGV[19]) end
end
return 1
"""
DAYS_KEPT = 400
"""Daily usage counters (the usage charts) expire after this many days."""


_ADD_OUTCOME = """
for _, noted in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  if noted == ARGV[1] then return 0 end
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
"""
"""KEYS: outcomes list. ARGV: outcome, how many are kept. One step, so a result delivered
twice at once (two consumers, or a redelivery racing the first delivery) is noted once: a
read, then a push, let both see the list without it (CI saw the note twice)."""

# Summary first, then only the messages after what it covers.
_HISTORY = """
local summary = redis.call('GET', KEYS[2])
local start = 0
if summary then start = tonumber(cjson.decode(summary)['covers']) or 0 end
return {redis.call('LRANGE', KEYS[1], start, -1), summary or false,
        redis.call('LRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1), start,
        redis.call('SMEMBERS', KEYS[4])}
"""


def day_usage_key(org: str, client: str | None, day: date) -> str:
    """The org's (or one client's) usage on one UTC day, for usage over time."""
    scope = f"client:{client}:" if client else ""
    return f"usage:{org}:{scope}day:{day:%Y-%m-%d}"


def month_usage_key(org: str, when: datetime | None = None) -> str:
    """The org's usage in one calendar month (UTC): what monthly token budgets are checked
    against (the gateway reads it; a new month starts from zero by itself)."""
    return f"usage:{org}:month:{(when or utcnow()):%Y-%m}"


BUDGET_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens")
"""The fields of a month's usage a budget counts: everything the provider processed, input
(cached or not) and output."""


def budget_tokens(values: dict[str, int]) -> int:
    return sum(values.get(f, 0) for f in BUDGET_FIELDS)


class TurnRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    turn_id: str
    user_text: str
    assistant_text: str
    model: str
    provider: str
    usage: Usage
    cost_usd: float = 0.0
    prompt: str = "full"
    created_at: datetime = Field(default_factory=utcnow)
    stop_reason: str | None = None
    """`cancelled` when the user stopped the answer: `assistant_text` is the partial answer."""
    error: str | None = None
    """The error code of a turn that failed: its user message is kept all the same (with a
    placeholder answer), so nothing the user typed is lost."""
    meta: dict[str, str] = Field(default_factory=dict)
    """How the turn was served, e.g. `memory`: `used`, `none` or `skipped:<reason>`."""


class Summary(BaseModel):
    text: str
    covers: int
    """How many of the oldest messages the summary replaces in prompts."""


@dataclass(frozen=True)
class History:
    recent: list[ChatMessage]
    """The messages the summary does not cover, oldest first."""
    offset: int
    """Index of `recent[0]` in the whole conversation (= what the summary covers)."""
    summary: Summary | None
    outcomes: list[str]
    """Outcomes of actions decided after their turn, oldest first."""
    tainted_by: tuple[str, ...] = ()
    """Untrusted sources earlier turns of this conversation read: their answers (and the
    summary of them) may carry that content into every later prompt."""

    @property
    def total(self) -> int:
        return self.offset + len(self.recent)


class UsageTotals(BaseModel):
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float = 0.0


def conversation_key(org: str, user: str, client: str, conversation: str) -> str:
    return f"conv:{org}:{user}:{client}:{conversation}"


def done_key(org: str, user: str, client: str, conversation: str) -> str:
    """The set of the conversation's finished turns (filled by `append_turn`): a turn in it
    is not appended, nor queued again by context (its TurnQueue)."""
    return conversation_key(org, user, client, conversation) + ":done"


def _history_keys(org: str, user: str, client: str, conversation: str) -> list[str]:
    base = conversation_key(org, user, client, conversation)
    return [base + ":messages", base + ":summary", base + ":outcomes", base + ":taint"]


class ConversationStore:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client
        self._append: Any = client.register_script(_APPEND)
        self._history: Any = client.register_script(_HISTORY)
        self._add_outcome: Any = client.register_script(_ADD_OUTCOME)

    async def close(self) -> None:
        await self._r.aclose()

    async def messages(self, org: str, user: str, client: str, conversation: str
                       ) -> list[ChatMessage]:
        raw = await self._r.lrange(conversation_key(org, user, client, conversation)
                                   + ":messages", 0, -1)
        return _parse_messages(raw)

    async def history(self, org: str, user: str, client: str, conversation: str) -> History:
        """What a prompt needs, in one round trip: the summary, only the messages it does not
        cover (a conversation of months is not re-read on every turn) and recent outcomes."""
        return self.parse_history(await self._history(
            keys=_history_keys(org, user, client, conversation), args=[OUTCOMES_KEPT]))

    def history_command(self, org: str, user: str, client: str, conversation: str
                        ) -> tuple[Any, ...]:
        """The same read as one raw command, to ride in a pipeline behind another (its reply
        goes to `parse_history`). EVALSHA: a server that lost its script cache answers
        NOSCRIPT, and the caller reads with `history` instead."""
        keys = _history_keys(org, user, client, conversation)
        return ("EVALSHA", self._history.sha, len(keys), *keys, OUTCOMES_KEPT)

    @staticmethod
    def parse_history(reply: Any) -> History:
        recent, summary, outcomes, offset, taint = reply
        return History(
            recent=_parse_messages(recent),
            offset=int(offset),
            summary=Summary.model_validate_json(summary) if summary else None,
            outcomes=[o.decode() if isinstance(o, bytes) else str(o) for o in reversed(outcomes)],
            tainted_by=tuple(sorted(t.decode() if isinstance(t, bytes) else str(t)
                                    for t in taint)))

    async def add_taint(self, org: str, user: str, client: str, conversation: str,
                        sources: list[str], ttl_s: int) -> None:
        """Remember that a turn of this conversation read untrusted content (docs/security.md:
        later turns inherit the taint while it is kept)."""
        key = conversation_key(org, user, client, conversation) + ":taint"
        pipe = self._r.pipeline(transaction=False)
        pipe.sadd(key, *sources[:50])
        pipe.expire(key, ttl_s)
        await pipe.execute()

    async def add_outcome(self, org: str, user: str, client: str, conversation: str,
                          outcome: str) -> None:
        # A redelivered result must not be noted twice (`_ADD_OUTCOME`).
        await self._add_outcome(
            keys=[conversation_key(org, user, client, conversation) + ":outcomes"],
            args=[outcome, OUTCOMES_KEPT])

    async def summary(self, org: str, user: str, client: str, conversation: str
                      ) -> Summary | None:
        raw = await self._r.get(conversation_key(org, user, client, conversation) + ":summary")
        return Summary.model_validate_json(raw) if raw else None

    async def begin_summary(self, org: str, user: str, client: str, conversation: str,
                            ttl_s: float) -> bool:
        """One summary asked for at a time per conversation: False while another is (until
        `end_summary`, or `ttl_s` for one whose answer never came)."""
        key = conversation_key(org, user, client, conversation) + ":summarising"
        return bool(await self._r.set(key, "1", nx=True, ex=max(1, round(ttl_s))))

    async def end_summary(self, org: str, user: str, client: str, conversation: str) -> None:
        await self._r.delete(conversation_key(org, user, client, conversation) + ":summarising")

    async def save_summary(self, org: str, user: str, client: str, conversation: str,
                           summary: Summary) -> None:
        """Keep the summary that covers more; a late, older summary never replaces a newer."""
        key = conversation_key(org, user, client, conversation) + ":summary"
        current = await self.summary(org, user, client, conversation)
        if current is None or summary.covers > current.covers:
            await self._r.set(key, summary.model_dump_json())

    async def append_turn(self, org: str, user: str, client: str, conversation: str,
                          record: TurnRecord) -> bool:
        base = conversation_key(org, user, client, conversation)
        usage = record.usage
        counts = (1, usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
                  usage.cache_creation_input_tokens, round(record.cost_usd * 1_000_000))
        args: list[Any] = [
            record.turn_id,
            ChatMessage(role="user", content=record.user_text).model_dump_json(),
            ChatMessage(role="assistant", content=record.assistant_text).model_dump_json(),
            record.model_dump_json(), time.time(), conversation,
        ]
        for field, value in zip(USAGE_FIELDS, counts, strict=True):
            args += [field, value]
        today = utcnow().date()
        added = await self._append(
            keys=[done_key(org, user, client, conversation), base + ":messages", base + ":turns",
                  f"convs:{org}:{user}:{client}", f"usage:{org}", f"usage:{org}:user:{user}",
                  f"usage:{org}:client:{client}", month_usage_key(org),
                  day_usage_key(org, None, today), day_usage_key(org, client, today)],
            args=[*args, DAYS_KEPT * 86400])
        return bool(added)

    async def conversations(self, org: str, user: str, client: str, offset: int, limit: int
                            ) -> list[tuple[str, float]]:
        """Most recently active first."""
        raw: list[Any] = await self._r.zrevrange(
            f"convs:{org}:{user}:{client}", offset, offset + limit - 1, withscores=True)
        return [(c.decode() if isinstance(c, bytes) else str(c), float(s)) for c, s in raw]

    async def titles(self, org: str, user: str, client: str, conversations: list[str]
                     ) -> list[str]:
        """The user's titles for these conversations ('' where none was given)."""
        if not conversations:
            return []
        raw = await self._r.hmget(f"convtitles:{org}:{user}:{client}", conversations)
        return [r.decode() if isinstance(r, bytes) else (r or "") for r in raw]

    async def set_title(self, org: str, user: str, client: str, conversation: str,
                        title: str) -> None:
        await self._r.hset(f"convtitles:{org}:{user}:{client}", conversation, title)

    async def count_conversations(self, org: str, user: str, client: str) -> int:
        return int(await self._r.zcard(f"convs:{org}:{user}:{client}"))

    async def turns(self, org: str, user: str, client: str, conversation: str, offset: int,
                    limit: int) -> tuple[list[TurnRecord], int]:
        key = conversation_key(org, user, client, conversation) + ":turns"
        pipe = self._r.pipeline(transaction=False)
        pipe.lrange(key, offset, offset + limit - 1)
        pipe.llen(key)
        raw, total = await pipe.execute()
        return [TurnRecord.model_validate_json(r) for r in raw], int(total)

    async def usage(self, org: str, user: str | None = None, client: str | None = None
                    ) -> UsageTotals:
        key = (f"usage:{org}:user:{user}" if user else
               f"usage:{org}:client:{client}" if client else f"usage:{org}")
        raw = await self._r.hgetall(key)
        values = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
        micro = values.pop("cost_microusd", 0)
        return UsageTotals(**values, cost_usd=micro / 1_000_000)

    async def daily_usage(self, org: str, client: str | None, days: int
                          ) -> list[tuple[date, UsageTotals]]:
        """The last `days` UTC days, oldest first (zeros for days without turns)."""
        today = utcnow().date()
        span = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
        pipe = self._r.pipeline(transaction=False)
        for day in span:
            pipe.hgetall(day_usage_key(org, client, day))
        out = []
        for day, raw in zip(span, await pipe.execute(), strict=True):
            values = {(k.decode() if isinstance(k, bytes) else k): int(v)
                      for k, v in raw.items()}
            micro = values.pop("cost_microusd", 0)
            out.append((day, UsageTotals(**values, cost_usd=micro / 1_000_000)))
        return out

    async def month_usage(self, key: str) -> dict[str, int]:
        raw = await self._r.hgetall(key)
        return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}

    async def forget_client(self, org: str, client: str) -> int:
        """Delete every conversation of a client (all users) with its summaries and usage."""
        deleted = await self._delete_matching(f"conv:{org}:*", client, None)
        deleted += await self._delete_matching(f"convs:{org}:*", client, None)
        deleted += await self._delete_matching(f"convtitles:{org}:*", client, None)
        deleted += int(await self._r.delete(f"usage:{org}:client:{client}"))
        async for key in self._r.scan_iter(match=f"usage:{org}:client:{client}:day:*",
                                           count=500):
            deleted += int(await self._r.delete(key))
        return deleted

    async def forget_conversation(self, org: str, client: str, conversation: str) -> int:
        return await self._delete_matching(f"conv:{org}:*", client, conversation)

    async def _delete_matching(self, pattern: str, client: str, conversation: str | None
                               ) -> int:
        deleted = 0
        async for raw in self._r.scan_iter(match=pattern, count=500):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            # Match ids by position: a glob could also match inside another id.
            parts = key.split(":")
            if parts[3] != client or (conversation is not None and parts[4] != conversation):
                continue
            deleted += int(await self._r.delete(key))
        return deleted
