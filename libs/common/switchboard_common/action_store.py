"""Actions in Valkey: written by the action_executor (the owner of every state change), read by
the gateway (approval lists, the audit log, drafts, tasks).

Keys (per org; JSON values):
- `act:{org}:{id}`                  ActionRecord
- `act:{org}:{id}:effect`           the tool's result, stored before the proposal is acked:
                                    the idempotency key of the effect
- `act:{org}:{id}:intent`           set just before the effect is attempted (see executor)
- `act:{org}:client:{c}:pending`    zset action id -> expiry (epoch s)
- `act:{org}:client:{c}:recent`     zset action id -> creation (epoch s), bounded
- `act:expiring`                    zset "{org}/{id}" -> expiry: the expiry sweeper's index
- `act:running`                     zset "{org}/{id}" -> approval time: approved, not finished
- `audit:{org}:{c}`                 list of AuditEntry, newest first, bounded
- `drafts:{org}:{c}`, `tasks:{org}:{c}`  hashes id -> JSON (the mail and task tools' data)
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as redis

from switchboard_common.actions import ActionRecord, ActionStatus, AuditEntry

EXPIRING = "act:expiring"
RUNNING = "act:running"
RECENT_KEEP = 1000
AUDIT_KEEP = 10_000

# Compare-and-set on the record's status: the transition happens only from one of the expected
# states, atomically, so two deciders (two sockets, a retry, the expiry sweeper) can never both
# win. KEYS: record, pending zset, expiring zset, running zset. ARGV: new JSON, action id,
# "{org}/{id}", keep-pending flag, approved-at (or ''), expected statuses... Returns the status
# found.
_TRANSITION = """
local raw = redis.call('GET', KEYS[1])
if not raw then return '' end
local status = cjson.decode(raw)['status']
for i = 6, #ARGV do
  if ARGV[i] == status then
    redis.call('SET', KEYS[1], ARGV[1])
    if ARGV[4] == '0' then
      redis.call('ZREM', KEYS[2], ARGV[2])
      redis.call('ZREM', KEYS[3], ARGV[3])
    end
    if ARGV[5] == '' then redis.call('ZREM', KEYS[4], ARGV[3])
    else redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3]) end
    return status
  end
end
return status
"""


def _rec_key(org: str, action_id: str) -> str:
    return f"act:{org}:{action_id}"


def _client_key(org: str, client: str, what: str) -> str:
    return f"act:{org}:client:{client}:{what}"


def _member(org: str, action_id: str) -> str:
    return f"{org}/{action_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ActionStore:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client
        self._transition: Any = client.register_script(_TRANSITION)

    # ---- records ----
    async def create(self, record: ActionRecord) -> ActionRecord:
        """Store a new record unless one exists (a redelivered proposal): returns the stored."""
        key = _rec_key(record.org_id, record.action_id)
        if not await self._r.set(key, record.model_dump_json(), nx=True):
            existing = await self.get(record.org_id, record.action_id)
            assert existing is not None
            return existing
        pipe = self._r.pipeline(transaction=True)
        created = record.created_at.timestamp()
        recent = _client_key(record.org_id, record.client_id, "recent")
        pipe.zadd(recent, {record.action_id: created})
        pipe.zremrangebyrank(recent, 0, -RECENT_KEEP - 1)
        if record.status == "approved":
            pipe.zadd(RUNNING, {_member(record.org_id, record.action_id): created})
        if record.status == "pending" and record.expires_at is not None:
            expiry = record.expires_at.timestamp()
            pipe.zadd(_client_key(record.org_id, record.client_id, "pending"),
                      {record.action_id: expiry})
            pipe.zadd(EXPIRING, {_member(record.org_id, record.action_id): expiry})
        await pipe.execute()
        return record

    async def get(self, org: str, action_id: str) -> ActionRecord | None:
        raw = await self._r.get(_rec_key(org, action_id))
        return ActionRecord.model_validate_json(raw) if raw else None

    async def transition(self, new: ActionRecord, expected: tuple[ActionStatus, ...]
                         ) -> str | None:
        """Store `new` if the stored status is one of `expected`. Returns None on success,
        else the status found ('' when there is no such action)."""
        found = _text(await self._transition(
            keys=[_rec_key(new.org_id, new.action_id),
                  _client_key(new.org_id, new.client_id, "pending"), EXPIRING, RUNNING],
            args=[new.model_dump_json(), new.action_id, _member(new.org_id, new.action_id),
                  "1" if new.status == "pending" else "0",
                  repr(time.time()) if new.status == "approved" else "", *expected]))
        if found in expected:
            return None
        return found

    async def pending(self, org: str, client: str, limit: int = 200) -> list[ActionRecord]:
        ids = await self._r.zrange(_client_key(org, client, "pending"), 0, limit - 1)
        return await self._many(org, ids)

    async def recent(self, org: str, client: str, limit: int = 200) -> list[ActionRecord]:
        ids = await self._r.zrevrange(_client_key(org, client, "recent"), 0, limit - 1)
        return await self._many(org, ids)

    async def _many(self, org: str, ids: list[Any]) -> list[ActionRecord]:
        if not ids:
            return []
        raws = await self._r.mget([_rec_key(org, _text(i)) for i in ids])
        return [ActionRecord.model_validate_json(r) for r in raws if r]

    async def due_for_expiry(self, now_s: float, limit: int = 100) -> list[tuple[str, str]]:
        members = await self._r.zrangebyscore(EXPIRING, 0, now_s, start=0, num=limit)
        out = []
        for m in members:
            org, _, action_id = _text(m).partition("/")
            out.append((org, action_id))
        return out

    async def forget_expiry(self, org: str, action_id: str) -> None:
        await self._r.zrem(EXPIRING, _member(org, action_id))

    async def stalled(self, before_s: float, limit: int = 100) -> list[tuple[str, str]]:
        """Approved actions not finished since before `before_s` (their executor died)."""
        members = await self._r.zrangebyscore(RUNNING, 0, before_s, start=0, num=limit)
        return [(o, a) for o, _, a in (_text(m).partition("/") for m in members)]

    async def forget_running(self, org: str, action_id: str) -> None:
        await self._r.zrem(RUNNING, _member(org, action_id))

    # ---- effects (idempotency) ----
    async def effect(self, org: str, action_id: str) -> dict[str, Any] | None:
        raw = await self._r.get(_rec_key(org, action_id) + ":effect")
        return dict(json.loads(raw)) if raw else None

    async def save_effect(self, org: str, action_id: str, result: dict[str, Any],
                          ttl_s: int) -> None:
        await self._r.set(_rec_key(org, action_id) + ":effect", json.dumps(result), ex=ttl_s)

    async def mark_intent(self, org: str, action_id: str, ttl_s: int) -> bool:
        """True on the first attempt at the effect; False if an earlier attempt started it."""
        return bool(await self._r.set(_rec_key(org, action_id) + ":intent", "1", nx=True,
                                      ex=ttl_s))

    async def lock(self, org: str, action_id: str, ttl_s: float) -> bool:
        return bool(await self._r.set(_rec_key(org, action_id) + ":lock", "1", nx=True,
                                      px=int(ttl_s * 1000)))

    async def unlock(self, org: str, action_id: str) -> None:
        await self._r.delete(_rec_key(org, action_id) + ":lock")

    # ---- audit ----
    async def audit(self, org: str, client: str, entry: AuditEntry) -> None:
        key = f"audit:{org}:{client}"
        pipe = self._r.pipeline(transaction=False)
        pipe.lpush(key, entry.model_dump_json())
        pipe.ltrim(key, 0, AUDIT_KEEP - 1)
        await pipe.execute()

    async def audit_log(self, org: str, client: str, offset: int = 0, limit: int = 100
                        ) -> list[AuditEntry]:
        raw = await self._r.lrange(f"audit:{org}:{client}", offset, offset + limit - 1)
        return [AuditEntry.model_validate_json(r) for r in raw]

    # ---- tool data the API shows ----
    async def drafts(self, org: str, client: str) -> list[dict[str, Any]]:
        raw = await self._r.hvals(f"drafts:{org}:{client}")
        return sorted((json.loads(r) for r in raw), key=lambda d: str(d.get("created_at")))

    async def tasks(self, org: str, client: str) -> list[dict[str, Any]]:
        raw = await self._r.hvals(f"tasks:{org}:{client}")
        return sorted((json.loads(r) for r in raw), key=lambda d: str(d.get("created_at")))
