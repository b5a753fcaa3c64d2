"""Vector store adapter for Weaviate (`weaviate-client` v4, async API).

Mapping: one collection per embedding generation (`Sbmem_<gen>`), with multi-tenancy on and
**one tenant per org**: an org's objects live in their own shard, so a query can only reach the
tenant it names and deleting an org is dropping a tenant. Clients are a `client` property
filtered inside the tenant (tens of clients per org would make tenants too small to be worth
their overhead). Vectors are self-provided (our embedder), HNSW with cosine distance; BM25 runs
over `title` (boost 2) and `text`. Object UUIDs are uuid5(doc id), so upserts are idempotent.

Fusion is the port's (the same coverage-weighted RRF as the Redis adapter) rather than Weaviate's
own hybrid, so both adapters rank alike and the eval numbers hold for either.

Tested through testcontainers where a Docker engine exists (tests/connected/memory)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast
from urllib.parse import urlparse

import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.util import generate_uuid5

from switchboard_common.memory import MemoryKind, SourceType, Visibility
from switchboard_memory_indexer.domain.documents import Chunk
from switchboard_memory_indexer.domain.ports import (
    Candidate,
    Forget,
    IndexInfo,
    Scope,
    StoredHit,
    Vectors,
    VectorStore,
)
from switchboard_memory_indexer.domain.text import query_terms

_TAGS = ("org", "client", "vis", "user", "source", "kind", "item", "conv", "doc_id")
META = "SbmemMeta"


def _collection_name(base: str, model: str, dim: int) -> str:
    gen = hashlib.sha1(model.encode()).hexdigest()[:8]
    return f"{base.capitalize()}_{gen}d{dim}"


def _scope_filter(scope: Scope, visibility: bool = True) -> Any:
    f = Filter.by_property("client").equal(scope.client)
    if visibility:
        shared = Filter.by_property("vis").equal("client")
        f = f & (shared | Filter.by_property("user").equal(scope.user) if scope.user
                 else shared)
    if scope.sources:
        f = f & Filter.by_property("source").contains_any(list(scope.sources))
    if scope.kinds:
        f = f & Filter.by_property("kind").contains_any(list(scope.kinds))
    if scope.since is not None:
        f = f & Filter.by_property("ts").greater_or_equal(scope.since)
    if scope.until is not None:
        f = f & Filter.by_property("ts").less_or_equal(scope.until)
    return f


def _props(chunk: Chunk) -> dict[str, Any]:
    return {"org": chunk.org, "client": chunk.client, "vis": chunk.visibility,
            "user": chunk.user or "", "source": chunk.source, "kind": chunk.kind,
            "item": chunk.item_id,
            "conv": chunk.conversation or "", "doc_id": chunk.doc_id, "chunk": chunk.chunk,
            "n": chunk.n_chunks, "title": chunk.title, "text": chunk.text,
            "ts": chunk.occurred_at}


class WeaviateVectorStore(VectorStore):
    def __init__(self, client: weaviate.WeaviateAsyncClient, base: str = "sbmem") -> None:
        self._c = client
        self._base = base
        self._info: IndexInfo | None = None

    @classmethod
    async def connect(cls, url: str, grpc_port: int, api_key: str = "", base: str = "sbmem"
                      ) -> WeaviateVectorStore:
        u = urlparse(url)
        secure = u.scheme == "https"
        client = weaviate.use_async_with_custom(
            http_host=u.hostname or "127.0.0.1", http_port=u.port or (443 if secure else 80),
            http_secure=secure, grpc_host=u.hostname or "127.0.0.1", grpc_port=grpc_port,
            grpc_secure=secure,
            auth_credentials=weaviate.auth.AuthApiKey(api_key) if api_key else None)
        await client.connect()
        return cls(client, base)

    def _require(self) -> IndexInfo:
        if self._info is None:
            raise RuntimeError("ensure() first")
        return self._info

    def _tenant(self, org: str) -> Any:
        return self._c.collections.get(self._require().name).with_tenant(org)

    # ---- lifecycle

    async def _meta(self) -> Any:
        if not await self._c.collections.exists(META):
            await self._c.collections.create(
                META, vector_config=Configure.Vectors.self_provided(),
                properties=[Property(name=n, data_type=DataType.TEXT)
                            for n in ("base", "index", "model")]
                + [Property(name="dim", data_type=DataType.INT)])
        return self._c.collections.get(META)

    async def active(self) -> IndexInfo | None:
        obj = await (await self._meta()).query.fetch_object_by_id(generate_uuid5(self._base))
        if obj is None:
            return None
        p = obj.properties
        return IndexInfo(str(p["index"]), str(p["model"]), int(cast(int, p["dim"])))

    async def ensure(self, model: str, dim: int) -> IndexInfo:
        name = _collection_name(self._base, model, dim)
        if not await self._c.collections.exists(name):
            text = [Property(name=n, data_type=DataType.TEXT, tokenization=Tokenization.FIELD,
                             index_searchable=False) for n in _TAGS]
            await self._c.collections.create(
                name,
                multi_tenancy_config=Configure.multi_tenancy(
                    enabled=True, auto_tenant_creation=True, auto_tenant_activation=True),
                vector_config=Configure.Vectors.self_provided(
                    vector_index_config=Configure.VectorIndex.hnsw(
                        distance_metric=VectorDistances.COSINE)),
                properties=[*text,
                            Property(name="title", data_type=DataType.TEXT),
                            Property(name="text", data_type=DataType.TEXT),
                            Property(name="ts", data_type=DataType.NUMBER),
                            Property(name="chunk", data_type=DataType.INT),
                            Property(name="n", data_type=DataType.INT)])
        self._info = IndexInfo(name, model, dim)
        return self._info

    async def activate(self) -> None:
        info = self._require()
        meta = await self._meta()
        props = {"base": self._base, "index": info.name, "model": info.model, "dim": info.dim}
        uid = generate_uuid5(self._base)
        if await meta.data.exists(uid):
            await meta.data.replace(uuid=uid, properties=props)
        else:
            await meta.data.insert(props, uuid=uid)

    async def chunks_of(self, info: IndexInfo) -> AsyncIterator[list[Chunk]]:
        old = self._c.collections.get(info.name)
        for tenant in (await old.tenants.get()).values():
            batch: list[Chunk] = []
            async for obj in old.with_tenant(tenant.name).iterator():
                batch.append(_chunk(obj.properties))
                if len(batch) >= 256:
                    yield batch
                    batch = []
            if batch:
                yield batch

    async def drop(self, info: IndexInfo) -> None:
        await self._c.collections.delete(info.name)

    async def close(self) -> None:
        await self._c.close()

    # ---- writes

    async def upsert(self, chunks: Sequence[Chunk], vectors: Vectors,
                     context_vectors: Vectors | None = None) -> int:
        # One vector per object here: the contextual second vector is not stored (yet), so
        # hybrid search on Weaviate fuses the dense and BM25 rankings only.
        from weaviate.classes.data import DataObject

        by_org: dict[str, list[Any]] = {}
        for chunk, vec in zip(chunks, vectors, strict=True):
            by_org.setdefault(chunk.org, []).append(DataObject(
                properties=_props(chunk), uuid=generate_uuid5(chunk.doc_id),
                vector=[float(x) for x in vec]))
        # A new org's tenant is created on first insert (auto_tenant_creation).
        for org, objects in by_org.items():
            result = await self._tenant(org).data.insert_many(objects)
            if result.has_errors:
                raise RuntimeError(f"weaviate insert failed: {list(result.errors.values())[:1]}")
        # Chunks an item no longer has (edited event): delete numbers >= its new count.
        for chunk in (c for c in chunks if c.chunk == 0):
            await self._tenant(chunk.org).data.delete_many(
                where=Filter.by_property("client").equal(chunk.client)
                & Filter.by_property("item").equal(chunk.item_id)
                & Filter.by_property("source").equal(chunk.source)
                & Filter.by_property("chunk").greater_or_equal(chunk.n_chunks))
        return len(chunks)

    # ---- reads

    async def _ranked(self, scope: Scope, vector: Vectors | None, text: str | None,
                      candidates: int) -> tuple[list[Candidate], list[Candidate], list[Candidate]]:
        tenant = self._tenant(scope.org)
        flt = _scope_filter(scope)
        dense: list[Candidate] = []
        lexical: list[Candidate] = []
        if vector is not None:
            res = await tenant.query.near_vector(
                near_vector=[float(x) for x in vector], limit=candidates, filters=flt,
                return_properties=["doc_id", "ts", "kind"],
                return_metadata=MetadataQuery(distance=True))
            dense = [Candidate(str(o.properties["doc_id"]), float(cast(float, o.properties["ts"])),
                               str(o.properties["kind"]), 1.0 - float(o.metadata.distance or 1.0))
                     for o in res.objects]
        terms = query_terms(text) if text is not None else []
        if terms:
            res = await tenant.query.bm25(
                query=" ".join(terms), query_properties=["title^2", "text"], limit=candidates,
                filters=flt, return_properties=["doc_id", "ts", "kind"],
                return_metadata=MetadataQuery(score=True))
            lexical = [Candidate(str(o.properties["doc_id"]),
                                 float(cast(float, o.properties["ts"])), str(o.properties["kind"]),
                                 float(o.metadata.score or 0.0))
                       for o in res.objects]
        return dense, lexical, []

    async def _fetch(self, scope: Scope, ids: Sequence[str]) -> list[StoredHit]:
        if not ids:
            return []
        res = await self._tenant(scope.org).query.fetch_objects(
            filters=Filter.by_property("client").equal(scope.client)
            & Filter.by_property("doc_id").contains_any(list(ids)), limit=len(ids))
        found = {str(o.properties["doc_id"]): o.properties for o in res.objects}
        return [_hit(doc, found[doc]) for doc in ids if doc in found]

    async def _delete(self, scope: Scope, what: Forget) -> int:
        f = _scope_filter(scope, visibility=False)
        if what.item_id:
            f = f & Filter.by_property("item").equal(what.item_id)
        if what.source:
            f = f & Filter.by_property("source").equal(what.source)
        if what.conversation:
            f = f & Filter.by_property("conv").equal(what.conversation) \
                & Filter.by_property("source").equal("turn")
        res = await self._tenant(scope.org).data.delete_many(where=f)
        return int(res.successful)

    async def ready(self) -> bool:
        return self._info is not None and bool(await self._c.is_ready())

    async def count(self, scope: Scope) -> int:
        res = await self._tenant(scope.org).aggregate.over_all(
            filters=_scope_filter(scope, visibility=False), total_count=True)
        return int(res.total_count or 0)


def _hit(doc: str, p: Any) -> StoredHit:
    return StoredHit(id=doc, item_id=str(p["item"]), source=str(p["source"]),
                     title=str(p["title"]), text=str(p["text"]), occurred_at=float(p["ts"]),
                     conversation=str(p["conv"]) or None, chunk=int(p["chunk"]),
                     kind=str(p["kind"]))


def _chunk(p: Any) -> Chunk:
    return Chunk(org=str(p["org"]), client=str(p["client"]), item_id=str(p["item"]),
                 chunk=int(p["chunk"]), n_chunks=int(p["n"]),
                 source=cast(SourceType, p["source"]), visibility=cast(Visibility, p["vis"]),
                 user=str(p["user"]) or None, title=str(p["title"]), text=str(p["text"]),
                 occurred_at=float(p["ts"]), conversation=str(p["conv"]) or None,
                 kind=cast(MemoryKind, p["kind"]))
