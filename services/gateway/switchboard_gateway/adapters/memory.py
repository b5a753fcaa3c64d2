"""The gateway's side of the memory contracts: publish ingest events to JetStream (deduplicated
by the producer's event id) and ask memory_indexer to search or forget (request/reply). Every
forget goes through here, so it also drops the client's thread tails (adapters/threads.py)."""

from __future__ import annotations

from faststream.nats import NatsBroker

from switchboard_common.bus import publish_command
from switchboard_common.ingest_batches import IngestBatches
from switchboard_common.memory import (
    ForgetRequest,
    ForgetResult,
    IngestEvent,
    SearchRequest,
    SearchResponse,
    forget_subject,
    ingest_msg_id,
    ingest_subject,
    search_subject,
)
from switchboard_common.streams import INGEST
from switchboard_gateway.adapters.requests import Unavailable, ask
from switchboard_gateway.adapters.threads import ThreadTails


class MemoryBus:
    def __init__(self, broker: NatsBroker, search_timeout_s: float, forget_timeout_s: float,
                 batches: IngestBatches, threads: ThreadTails) -> None:
        self._broker = broker
        self.batches = batches
        """Upload batches and their progress (Valkey; memory_indexer records outcomes)."""
        self.threads = threads
        """The last uploaded event of each thread, for the next upload's thread contexts."""
        self._search_timeout = search_timeout_s
        self._forget_timeout = forget_timeout_s

    async def ingest(self, event: IngestEvent) -> bool:
        """Store the event in SB_INGEST; False when it was a duplicate of one already there."""
        ack = await publish_command(
            self._broker, event, ingest_subject(event.org_id, event.client_id),
            msg_id=ingest_msg_id(event.org_id, event.client_id, event.event_id),
            stream=INGEST.name)
        return not ack.duplicate

    async def search(self, request: SearchRequest) -> SearchResponse:
        return await ask(self._broker.connection, search_subject(request.org_id), request,
                         SearchResponse, self._search_timeout, "memory")

    async def forget(self, request: ForgetRequest) -> ForgetResult:
        result = await ask(self._broker.connection, forget_subject(request.org_id), request,
                           ForgetResult, self._forget_timeout, "memory")
        if result.error:
            raise Unavailable(f"memory could not forget: {result.error}")
        # Whatever the scope: a thread's last event may be what was forgotten, and its text
        # would live on in the next event's vector. Dropping every thread of the client costs
        # at most one context per thread.
        await self.threads.drop(request.org_id, request.client_id)
        return result
