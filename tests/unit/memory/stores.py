"""A vector store with no index life cycle, for unit tests of the port's own logic: the
index methods are no-ops; subclasses add what their test looks at."""

from __future__ import annotations

from collections.abc import AsyncIterator

from switchboard_memory_indexer.domain.documents import Chunk
from switchboard_memory_indexer.domain.ports import Forget, IndexInfo, Scope, VectorStore


class IndexlessStore(VectorStore):
    async def ensure(self, model: str, dim: int) -> IndexInfo:
        return IndexInfo("i", model, dim)

    async def active(self) -> IndexInfo | None:
        return None

    async def activate(self) -> None:
        return None

    async def chunks_of(self, info: IndexInfo) -> AsyncIterator[list[Chunk]]:
        yield []

    async def drop(self, info: IndexInfo) -> None:
        return None

    async def _delete(self, scope: Scope, what: Forget) -> int:
        return 0

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
