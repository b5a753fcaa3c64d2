"""Micro-batching: many concurrent handlers each hand over one item's chunks; one flusher embeds
them together (a model call costs little more for 64 texts than for one) and writes them in one
pipelined round trip. Each handler awaits its own result, so it acks only after its chunks are
stored: a crash before the write leaves the message unacked and JetStream redelivers it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from switchboard_memory_indexer.domain.documents import Chunk
from switchboard_memory_indexer.domain.ports import Embedder, VectorStore, embed_chunks

log = logging.getLogger(__name__)


class IndexBatcher:
    def __init__(self, embedder: Embedder, store: VectorStore, max_batch: int = 64,
                 max_wait_s: float = 0.01) -> None:
        self._embedder = embedder
        self._store = store
        self._max = max_batch
        self._wait = max_wait_s
        self._pending: list[tuple[list[Chunk], asyncio.Future[int]]] = []
        self._count = 0
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def index(self, chunks: Sequence[Chunk]) -> int:
        if not chunks:
            return 0
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((list(chunks), future))
        self._count += len(chunks)
        if self._count >= self._max:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="index-batcher")
        return await future

    def _take(self) -> list[tuple[list[Chunk], asyncio.Future[int]]]:
        taken: list[tuple[list[Chunk], asyncio.Future[int]]] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0][0]) <= self._max):
            group = self._pending.pop(0)
            taken.append(group)
            size += len(group[0])
        self._count -= size
        if self._count < self._max:
            self._full.clear()
        return taken

    async def _run(self) -> None:
        while self._pending:
            if self._count < self._max:
                # Wait a little for more items; a full batch goes at once.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._wait)
            groups = [g for g in self._take() if not g[1].done()]
            if groups:
                await self._flush(groups)

    async def _flush(self, groups: list[tuple[list[Chunk], asyncio.Future[int]]]) -> None:
        try:
            await self._write([c for chunks, _ in groups for c in chunks])
        except Exception as exc:
            if len(groups) == 1:
                self._settle(groups[0][1], error=exc)
                return
            # One bad item must not fail its neighbours: retry each group alone, so only the
            # failing message is nacked (and dead-lettered once it exhausts max_deliver).
            log.warning("batch of %d items failed; retrying one by one", len(groups))
            for chunks, future in groups:
                try:
                    await self._write(chunks)
                except Exception as exc:
                    self._settle(future, error=exc)
                else:
                    self._settle(future, len(chunks))
        else:
            for chunks, future in groups:
                self._settle(future, len(chunks))

    async def _write(self, chunks: list[Chunk]) -> None:
        await self._store.upsert(chunks, *await embed_chunks(self._embedder, chunks))

    @staticmethod
    def _settle(future: asyncio.Future[int], value: int = 0, *,
                error: Exception | None = None) -> None:
        if future.done():  # the handler was cancelled (shutdown): nothing to tell it
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
