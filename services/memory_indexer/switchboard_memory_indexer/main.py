"""Composition root: settings -> embedder + vector store -> broker -> consumers -> handlers."""

from __future__ import annotations

from faststream import FastStream
from faststream.specification import AsyncAPI

from switchboard_common import telemetry
from switchboard_common.bus import connect_with_backoff, make_broker, prepare_jetstream
from switchboard_common.dead_letter import watch_dead_letters
from switchboard_common.ingest_batches import IngestBatches
from switchboard_common.memory import MemoryForgotten
from switchboard_common.ops import serve_ops
from switchboard_common.permissions import ROLES
from switchboard_common.streams import HISTORY, INGEST, ConsumerSpec
from switchboard_memory_indexer.adapters.factory import make_embedder, make_store, make_valkey
from switchboard_memory_indexer.adapters.tombstones import Tombstones
from switchboard_memory_indexer.handlers import ingest, queries
from switchboard_memory_indexer.service.batcher import IndexBatcher
from switchboard_memory_indexer.service.memory import MemoryService, Tuning, prepare_index
from switchboard_memory_indexer.settings import Settings


def consumers(settings: Settings) -> tuple[ConsumerSpec, ...]:
    return (
        ConsumerSpec(HISTORY, ingest.TURNS_CONSUMER, "turns.completed.>",
                     ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),
        ConsumerSpec(INGEST, ingest.INGEST_CONSUMER, "events.ingest.>",
                     ack_wait_s=settings.ack_wait_s, max_deliver=settings.max_deliver),
    )


def build_app(settings: Settings | None = None) -> FastStream:
    settings = settings or Settings()
    telemetry.setup("memory_indexer", settings.log_level)
    broker = make_broker(settings.nats_url, "memory_indexer", settings.shutdown_grace_s,
                         user=settings.nats_user, password=settings.nats_password)
    broker.include_router(ingest.router)
    broker.include_router(queries.router)
    broker.publisher("memory.forgotten.{org}", schema=MemoryForgotten,
                     title="memory_indexer/memory.forgotten",
                     description="After a forget: context deletes the matching conversations.")
    app = FastStream(broker, specification=AsyncAPI(title="Switchboard memory_indexer"))
    # Ready only once the embedder and the index are loaded (start-up below): before that a
    # memory search would go unanswered.
    readiness = serve_ops(app, broker, settings.http_host, settings.http_port,
                          consumers(settings))

    @app.on_startup
    async def connect() -> None:
        # The model and the index come first: subscriptions start only after on_startup, so
        # nothing is consumed before we can index it.
        embedder = await make_embedder(settings)
        # One query through the model before we are ready: its first call pays lazy loading
        # (weights mapped in, graphs optimised), which a search must not wait out.
        await embedder.embed_query("warm up")
        valkey = await make_valkey(settings)
        store = await make_store(settings, valkey)
        try:
            await prepare_index(store, embedder, reindex=settings.reindex_on_model_change)
        except BaseException:
            # Start-up fails (e.g. a model change with re-indexing off): release what we hold.
            await store.close()
            await embedder.close()
            raise
        batcher = IndexBatcher(embedder, store, settings.embed_batch,
                               settings.embed_wait_ms / 1000)
        tombstones = Tombstones(valkey, settings.index_name)
        memory = MemoryService(embedder, store, batcher, tombstones, Tuning(
            settings.chunk_chars, settings.chunk_overlap, settings.turns_private,
            settings.candidates, settings.assistant_weight))
        app.context.set_global("memory", memory)
        # The embedder is loaded once the service exists; the check adds the store and index.
        readiness.add("memory_store", memory.ready)
        app.context.set_global("batches", IngestBatches(valkey))
        app.context.set_global("valkey", valkey)
        app.context.set_global("settings", settings)
        await connect_with_backoff(broker, settings.connect_timeout_s)
        await prepare_jetstream(broker, consumers(settings), ROLES["memory_indexer"].streams(),
                                replicas=settings.stream_replicas)
        await watch_dead_letters(broker.connection, consumers(settings))

    @app.after_shutdown
    async def close() -> None:
        memory: MemoryService | None = app.context.get("memory")
        if memory is not None:
            await memory.store.close()
            await memory.embedder.close()
            # Shared by the tombstones, the batches and the RediSearch store (closing twice is
            # harmless); a Weaviate store does not close it.
            await app.context.get("valkey").aclose()

    return app
