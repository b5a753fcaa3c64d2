"""Prompt assembly (pure): the system prompt and the window of recent conversation."""

from __future__ import annotations

from collections.abc import Sequence

from switchboard_common.model import ChatMessage


def system_prompt(template: str, *, client_id: str) -> str:
    return template.format(client_id=client_id)


def window(history: Sequence[ChatMessage], user_text: str, max_messages: int
           ) -> list[ChatMessage]:
    """The last `max_messages` of history plus the new user message. The window starts on a
    user message because providers require alternating roles beginning with `user`."""
    recent = list(history[-max_messages:]) if max_messages > 0 else []
    while recent and recent[0].role != "user":
        recent.pop(0)
    return [*recent, ChatMessage(role="user", content=user_text)]
