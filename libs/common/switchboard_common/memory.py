"""Memory subjects: external events to index and searches over what is indexed.

| subject                          | kind               | producer -> consumer               |
|----------------------------------|--------------------|------------------------------------|
| events.ingest.<org>.<client>     | event, JetStream   | other systems, gateway -> memory_indexer |
| memory.search.<org>              | request/reply      | context -> memory_indexer          |
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from switchboard_common.envelope import Envelope, Id, utcnow

INGEST = "events.ingest.{org}.{client}"
SEARCH = "memory.search.{org}"

SourceType = Literal["document", "email", "calendar", "note", "crm", "turn"]


def ingest_subject(org: str, client: str) -> str:
    return f"events.ingest.{org}.{client}"


def search_subject(org: str) -> str:
    return f"memory.search.{org}"


class IngestEvent(Envelope):
    """An external event that becomes per-client memory. `event_id` is the producer's own id:
    indexing the same id twice is a no-op."""

    event_id: Id
    client_id: Id
    user_id: Id | None = None
    source: SourceType
    title: str = ""
    text: str = Field(min_length=1)
    occurred_at: datetime = Field(default_factory=utcnow)
    metadata: dict[str, Any] = Field(default_factory=dict)
