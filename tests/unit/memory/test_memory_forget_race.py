"""A forget holds against a delivery that died between its write and its own check: the
redelivery, covered by the tombstone, removes what the dead one left (seen once in CI by
`test_memory_forget_crash.py`, whose SIGKILL can land in that window)."""

from __future__ import annotations

from typing import Any

from switchboard_common.memory import IngestEvent
from switchboard_memory_indexer.domain.ports import Forget, Scope
from switchboard_memory_indexer.service.batcher import IndexBatcher
from switchboard_memory_indexer.service.memory import MemoryService, Tuning
from tests.unit.memory.test_memory_batcher import CountingEmbedder, ListStore, chunk


class DeletingStore(ListStore):
    async def _delete(self, scope: Scope, what: Forget) -> int:
        gone = [k for k, c in self.docs.items() if c.item_id == what.item_id]
        for key in gone:
            del self.docs[key]
        return len(gone)


class Buried:
    """Every message is covered: a forget ran after it was stored."""

    async def covers(self, *args: Any, **kw: Any) -> bool:
        return True


async def test_a_covered_redelivery_removes_what_an_earlier_delivery_wrote() -> None:
    store, embedder = DeletingStore(), CountingEmbedder()
    left = chunk(1, "Mail")  # written by the delivery that was killed before its check
    store.docs[left.doc_id] = left
    memory = MemoryService(embedder, store, IndexBatcher(embedder, store), Buried(),  # type: ignore[arg-type]
                           Tuning())
    event = IngestEvent(org_id="o", client_id="c", event_id="e1", source="note", text="Mail 1")
    assert await memory.index_event(event, seq=7) is None
    assert store.docs == {} and embedder.calls == []
