"""memory.forgotten -> delete the conversation data memory_indexer was told to forget."""

from __future__ import annotations

import logging

from faststream.nats import NatsRouter

from switchboard_common.memory import MemoryForgotten
from switchboard_context.deps import Conversations, Skills

log = logging.getLogger(__name__)


async def on_forgotten(event: MemoryForgotten, conversations: Conversations,
                       skills: Skills) -> None:
    if event.scope == "client":
        deleted = await conversations.forget_client(event.org_id, event.client_id)
        skills.invalidate(event.org_id)
    elif event.scope == "conversation" and event.conversation_id:
        deleted = await conversations.forget_conversation(event.org_id, event.client_id,
                                                          event.conversation_id)
    else:
        return
    log.info("forgot %d conversation keys of a client in org %s", deleted, event.org_id)


def router() -> NatsRouter:
    """A fresh router per broker: FastStream binds subscribers to the broker that
    includes them, so two apps in one process (tests) must not share one."""
    r = NatsRouter()
    r.subscriber(
        "memory.forgotten.*", queue="context", title="context/memory.forgotten",
                       description="Forget a client's (or one conversation's) stored turns."
    )(on_forgotten)
    return r
