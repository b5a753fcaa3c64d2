"""Retrieval for every prompt that could use memory: memory_indexer's hybrid search over NATS
request/reply.

The wait is bounded by a budget set from what searches measurably take: memory_indexer
reports each search's own time (`took_ms`, mostly the query's embedding), and the budget is
`margin + factor x` its moving average, kept between `floor` and `ceiling`. On a busy machine
embedding is slower, and a fixed 250 ms budget skipped retrieval silently; now the budget grows
with the measured time (a search that times out counts as having taken the whole budget, so
the next one waits longer), and a turn that proceeds without its memory says so
(`Retrieval.status`, kept in the turn's metadata and shown with the answer). An absent
memory_indexer (nobody subscribes: still loading its model and index, or down) is not skipped
silently: the turn fails with `warming_up`, retryable, rather than being answered as if the
client had no memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient

from switchboard_common.bus import NoAnswer, request_reply
from switchboard_common.errors import ErrorCode, SwitchboardError
from switchboard_common.memory import SearchRequest, SearchResponse, search_subject
from switchboard_context.domain.prompt import RetrievedItem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retrieval:
    items: list[RetrievedItem] = field(default_factory=list)
    status: str = "none"
    """`used` (items found), `none` (nothing relevant), `not_needed` (small talk), or
    `skipped:<why>` (the turn proceeds without its memory: timeout, refused)."""


@dataclass
class SearchBudget:
    floor_s: float = 0.25
    ceiling_s: float = 3.0
    factor: float = 3.0
    margin_s: float = 0.1
    weight: float = 0.3
    """Weight of the newest measurement in the moving average."""
    average_s: float | None = None

    def seconds(self) -> float:
        if self.average_s is None:  # nothing measured yet: the first search may warm up
            return self.ceiling_s
        wanted = self.margin_s + self.factor * self.average_s
        return min(self.ceiling_s, max(self.floor_s, wanted))

    def measured(self, took_s: float) -> None:
        self.average_s = took_s if self.average_s is None else (
            self.weight * took_s + (1 - self.weight) * self.average_s)


class MemorySearch:
    def __init__(self, nc: NatsClient, budget: SearchBudget, k: int) -> None:
        self._nc = nc
        self.budget = budget
        self._k = k

    async def search(self, org: str, user: str, client: str, query: str) -> Retrieval:
        request = SearchRequest(org_id=org, client_id=client, user_id=user,
                                query=query[:2000], k=self._k)
        wait = self.budget.seconds()
        try:
            response = await request_reply(self._nc, search_subject(org), request,
                                           SearchResponse, wait)
        except NoAnswer as exc:
            if exc.no_responders:
                raise SwitchboardError("memory search is starting up, retry shortly",
                                       code=ErrorCode.WARMING_UP, retryable=True) from exc
            self.budget.measured(wait)
            log.warning("memory search skipped after %.2fs: %s", wait, exc)
            return Retrieval(status="skipped:timeout")
        self.budget.measured(response.took_ms / 1000)
        if response.error:
            log.warning("memory search refused: %s", response.error)
            return Retrieval(status=f"skipped:{response.error}")
        items = [RetrievedItem(id=h.item_id, source=h.source, text=h.text,
                               occurred_at=h.occurred_at.date().isoformat())
                 for h in response.hits]
        return Retrieval(items=items, status="used" if items else "none")
