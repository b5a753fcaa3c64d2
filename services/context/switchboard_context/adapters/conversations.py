"""The conversation store in Valkey.

Keys (all per org, user, client, conversation):
- `conv:{org}:{user}:{client}:{conv}:messages`  list of ChatMessage JSON, oldest first
- `conv:{org}:{user}:{client}:{conv}:turns`     set of turn ids already appended
- `ctx:pending:{turn}`                            the TurnRequest awaiting its model result
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from switchboard_common.model import ChatMessage
from switchboard_common.turns import TurnRequest

# Appending a turn must happen exactly once even when the model result is redelivered:
# the membership check and both pushes run atomically in one script.
_APPEND = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
return 0
"""


def conversation_key(org: str, user: str, client: str, conversation: str) -> str:
    return f"conv:{org}:{user}:{client}:{conversation}"


class ConversationStore:
    def __init__(self, client: redis.Redis, pending_ttl_s: int) -> None:
        self._r = client
        self._ttl = pending_ttl_s
        self._append: Any = client.register_script(_APPEND)

    async def recent(self, org: str, user: str, client: str, conversation: str, limit: int
                     ) -> list[ChatMessage]:
        key = conversation_key(org, user, client, conversation) + ":messages"
        raw = await self._r.lrange(key, -limit, -1) if limit > 0 else []
        return [ChatMessage.model_validate_json(item) for item in raw]

    async def append_turn(self, org: str, user: str, client: str, conversation: str, turn_id: str,
                          user_text: str, assistant_text: str) -> bool:
        base = conversation_key(org, user, client, conversation)
        added = await self._append(
            keys=[base + ":messages", base + ":turns"],
            args=[turn_id,
                  ChatMessage(role="user", content=user_text).model_dump_json(),
                  ChatMessage(role="assistant", content=assistant_text).model_dump_json()],
        )
        return bool(added)

    async def save_pending(self, request: TurnRequest) -> None:
        await self._r.set(f"ctx:pending:{request.turn_id}", request.model_dump_json(),
                          ex=self._ttl)

    async def pending(self, turn_id: str) -> TurnRequest | None:
        raw = await self._r.get(f"ctx:pending:{turn_id}")
        return TurnRequest.model_validate_json(raw) if raw else None

    async def forget_pending(self, turn_id: str) -> None:
        await self._r.delete(f"ctx:pending:{turn_id}")

    async def close(self) -> None:
        await self._r.aclose()
