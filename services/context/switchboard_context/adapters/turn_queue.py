"""One turn at a time per conversation, in order, across any number of context replicas.

Each conversation has a waiting set (sorted by the JetStream sequence of the turn request, i.e.
arrival order) and at most one active turn, held in Valkey with a time-to-live so a turn that
never finishes (its deadline passed) cannot block the conversation. Scripts run atomically, so
two replicas can never both start a turn of one conversation. A sweeper retries conversations
whose active turn expired while turns were waiting.

Within one replica turn requests are handled one at a time (max_workers=1 on that consumer), so
arrival order is stream order; across replicas, two messages of one conversation arriving within
the same moment are ordered by whichever reached Valkey first.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError

PENDING_CONVERSATIONS = "ctxq:pending"
TAKEN = ""
"""What `enqueue` answers when its `once` key is held by another claimant: nothing queued."""

# KEYS: waiting zset, active key, pending set, the conversation's finished turns[, turn
# record[, once key]]. ARGV: turn, score, ttl_ms, conversation base[, record value, record
# ttl_s[, claimant, once ttl_s]]. Returns the turn to start now, nil, or '' (TAKEN: the turn
# already finished, or the once key is another claimant's, or this claimant's turn already
# ran: its record is gone).
_ENQUEUE = """
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return '' end
if KEYS[6] then
  local held = redis.call('GET', KEYS[6])
  if held and (held ~= ARGV[7] or redis.call('EXISTS', KEYS[5]) == 0) then return '' end
  redis.call('SET', KEYS[6], ARGV[7], 'EX', ARGV[8])
end
if KEYS[5] then redis.call('SET', KEYS[5], ARGV[5], 'EX', ARGV[6]) end
local active = redis.call('GET', KEYS[2])
if active == ARGV[1] then return ARGV[1] end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
if active then
  redis.call('SADD', KEYS[3], ARGV[4])
  return nil
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
redis.call('ZREM', KEYS[1], head)
redis.call('SET', KEYS[2], head, 'PX', ARGV[3])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[4])
else redis.call('SADD', KEYS[3], ARGV[4]) end
return head
"""

# KEYS: waiting zset, active key, pending set[, finished turn's record]. ARGV: finished turn
# ('' for the sweeper), ttl_ms, conversation base. Returns the next turn to start, or nil.
_FINISH = """
if KEYS[4] then redis.call('DEL', KEYS[4]) end
local active = redis.call('GET', KEYS[2])
if active and active == ARGV[1] then redis.call('DEL', KEYS[2]); active = false end
redis.call('ZREM', KEYS[1], ARGV[1])
if active then return nil end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if not head then redis.call('SREM', KEYS[3], ARGV[3]); return nil end
redis.call('ZREM', KEYS[1], head)
redis.call('SET', KEYS[2], head, 'PX', ARGV[2])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
return head
"""


def _keys(base: str) -> list[str]:
    return [f"ctxq:{base}:waiting", f"ctxq:{base}:active", PENDING_CONVERSATIONS]


def _enqueue_args(base: str, turn_id: str, order: int, ttl_ms: int,
                  record: tuple[str, bytes, int] | None, once: tuple[str, str, int] | None,
                  done: str | None) -> tuple[list[Any], list[Any]]:
    keys: list[Any] = [*_keys(base), done or f"{base}:done"]
    args: list[Any] = [turn_id, order, ttl_ms, base]
    if record is not None:
        keys.append(record[0])
        args += [record[1], record[2]]
        if once is not None:
            keys.append(once[0])
            args += [once[1], once[2]]
    return keys, args


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class TurnQueue:
    def __init__(self, client: redis.Redis, active_ttl_s: float) -> None:
        self._r = client
        self._ttl_ms = int(active_ttl_s * 1000)
        self._enqueue: Any = client.register_script(_ENQUEUE)
        self._finish: Any = client.register_script(_FINISH)

    async def enqueue(self, base: str, turn_id: str, order: int,
                      record: tuple[str, bytes, int] | None = None,
                      once: tuple[str, str, int] | None = None,
                      done: str | None = None) -> str | None:
        """Queue the turn; `record` (key, value, ttl_s) is written by the same script, before
        the turn is queued, so the turn's request is stored before it can be started. (One
        EVALSHA: a pipeline carrying a script costs redis-py a SCRIPT EXISTS round trip on
        every execute.)

        `once` (key, claimant, ttl_s; needs `record`) makes queueing happen at most once per
        key, atomically with it: the key is set to the claimant and the turn queued, or
        neither (TAKEN). The same claimant may queue again while the turn's record lives (it
        crashed or failed before starting the turn: the redelivery takes over), never after
        the turn ran.

        `done`: the set of the conversation's finished turns (`conversations.done_key`;
        default: `<base>:done`, which it is for a user's turn). A turn in it is not queued
        again (TAKEN): its request delivered once more (JetStream redelivered it after the
        turn finished, or a re-sent key's request past JetStream's duplicate window) would
        otherwise run the turn twice."""
        keys, args = _enqueue_args(base, turn_id, order, self._ttl_ms, record, once, done)
        return _text(await self._enqueue(keys=keys, args=args))

    async def enqueue_then(self, base: str, turn_id: str, order: int,
                           record: tuple[str, bytes, int], then: tuple[Any, ...],
                           done: str | None = None) -> tuple[str | None, Any]:
        """`enqueue`, and `then` (a raw command) in the same round trip, run after the
        script on the same connection: a read of the conversation there sees every turn
        that finished before this one was queued. `then`'s reply, or None when it could not
        ride along (the server lost its script cache: the scripts load again as usual)."""
        keys, args = _enqueue_args(base, turn_id, order, self._ttl_ms, record, None, done)
        pipe = self._r.pipeline(transaction=False)
        pipe.execute_command("EVALSHA", self._enqueue.sha, len(keys), *keys, *args)
        pipe.execute_command(*then)
        started, reply = await pipe.execute(raise_on_error=False)
        if isinstance(started, NoScriptError):
            return await self.enqueue(base, turn_id, order, record, done=done), None
        if isinstance(started, Exception):
            raise started
        return _text(started), None if isinstance(reply, Exception) else reply

    async def finish(self, base: str, turn_id: str = "", forget: str | None = None
                     ) -> str | None:
        """Free the conversation and take its next turn; `forget` (the finished turn's record
        key) is deleted by the same script."""
        keys: list[Any] = _keys(base) + ([forget] if forget else [])
        return _text(await self._finish(keys=keys, args=[turn_id, self._ttl_ms, base]))

    async def pending_conversations(self) -> list[str]:
        return [t for t in (_text(v) for v in await self._r.smembers(PENDING_CONVERSATIONS))
                if t]
