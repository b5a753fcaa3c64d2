"""Retrieval for full prompts: memory_indexer's hybrid search over NATS request/reply.
Bounded by a short timeout: a slow memory service costs the prompt its retrieved items,
never the turn. An absent one (nobody subscribes: it is still loading its model and index, or
down) is not skipped silently: the turn fails with `warming_up`, retryable, rather than being
answered as if the client had no memory."""

from __future__ import annotations

import logging

from nats.aio.client import Client as NatsClient

from switchboard_common.bus import NoAnswer, request_reply
from switchboard_common.errors import ErrorCode, SwitchboardError
from switchboard_common.memory import SearchRequest, SearchResponse, search_subject
from switchboard_context.domain.prompt import RetrievedItem

log = logging.getLogger(__name__)


class MemorySearch:
    def __init__(self, nc: NatsClient, timeout_s: float, k: int) -> None:
        self._nc = nc
        self._timeout = timeout_s
        self._k = k

    async def search(self, org: str, user: str, client: str, query: str
                     ) -> list[RetrievedItem]:
        request = SearchRequest(org_id=org, client_id=client, user_id=user,
                                query=query[:2000], k=self._k)
        try:
            response = await request_reply(self._nc, search_subject(org), request,
                                           SearchResponse, self._timeout)
        except NoAnswer as exc:
            if exc.no_responders:
                raise SwitchboardError("memory search is starting up, retry shortly",
                                       code=ErrorCode.WARMING_UP, retryable=True) from exc
            log.info("memory search skipped: %s", exc)
            return []
        if response.error:
            log.warning("memory search refused: %s", response.error)
        return [RetrievedItem(id=h.item_id, source=h.source, text=h.text,
                              occurred_at=h.occurred_at.date().isoformat())
                for h in response.hits]
