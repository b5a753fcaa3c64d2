"""Turn state in Valkey.

Keys:
- `idem:{org}:{user}:{key}`  -> turn id: a client's idempotency key, remembered `ttl` seconds
- `turn:{turn_id}`           -> TurnRecord JSON: who owns the turn, its deadline
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as redis
from pydantic import SecretStr

from switchboard_common.valkey import connect_valkey, valkey_client
from switchboard_gateway.adapters.limits import Then
from switchboard_gateway.domain.turns import TurnRecord

log = logging.getLogger(__name__)

# Claiming a key and recording the new turn happen atomically, so a duplicate that races the
# original always finds the turn record of the id it gets back. Same semantics as
# `SET idem NX EX ttl` followed by `SET turn:<id> EX ttl`.
_CLAIM = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return false
"""

# Undo a claim whose TurnRequest could not be published, so the client's retry with the same
# key starts the turn instead of attaching to one that never began. Only our own claim.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 0
"""


def idem_key(org: str, user: str, key: str) -> str:
    return f"idem:{org}:{user}:{key}"


def turn_key(turn_id: str) -> str:
    return f"turn:{turn_id}"


class TurnStore:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._r = client
        self._ttl = ttl_s
        self._claim: Any = client.register_script(_CLAIM)
        self._release: Any = client.register_script(_RELEASE)

    async def claim(self, record: TurnRecord, idempotency_key: str) -> TurnRecord | None:
        """Record `record` as the turn for this key. If the key was already claimed, return
        that turn's record instead (None if it has expired meanwhile)."""
        step = self.claim_step(record, idempotency_key)
        return await self.claimed(record, await self._claim(keys=step.keys, args=step.args))

    def claim_step(self, record: TurnRecord, idempotency_key: str) -> Then:
        """The claim as a script to run inside the turn's admission (`Limiter.admit_turn`),
        in the same round trip; its reply goes to `claimed`."""
        return Then(_CLAIM, [idem_key(record.org, record.user, idempotency_key),
                             turn_key(record.turn_id)],
                    [record.turn_id, record.model_dump_json(), self._ttl])

    async def claimed(self, record: TurnRecord, existing: bytes | None) -> TurnRecord | None:
        """What `claim` returns, from the claim script's reply."""
        if existing is None:
            return record
        return await self.get(existing.decode())

    async def release(self, record: TurnRecord, idempotency_key: str) -> None:
        await self._release(keys=[idem_key(record.org, record.user, idempotency_key),
                                  turn_key(record.turn_id)], args=[record.turn_id])

    async def get(self, turn_id: str) -> TurnRecord | None:
        raw = await self._r.get(turn_key(turn_id))
        return TurnRecord.model_validate_json(raw) if raw else None

    async def ping(self, timeout_s: float = 1.0) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                return bool(await self._r.ping())
        except (redis.RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        await self._r.aclose()


async def open_store(url: str, ttl_s: int, wait_s: float, password: SecretStr | None = None
                     ) -> TurnStore:
    """Wait up to `wait_s` for Valkey. If it is still down, start anyway: the client connects
    lazily per command, `/readyz` says 503 until Valkey answers, and turns get a retryable
    `service_unavailable`. An edge that stays up and reports not-ready is easier to operate
    than one that crash-loops while a dependency restarts."""
    try:
        client = await connect_valkey(url, wait_s, password)
    except ConnectionError as exc:
        log.error("Valkey unreachable at start-up, continuing not ready: %s", exc)
        client = valkey_client(url, password)
    return TurnStore(client, ttl_s)
