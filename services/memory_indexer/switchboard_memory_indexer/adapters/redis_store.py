"""Vector store adapter for the RediSearch module (Valkey + redisearch.so embedded; Redis Stack
or Redis 8 in production): one HNSW vector field, BM25 text fields and tag filters in one engine.

Layout, per index generation (one generation per embedding model + dimension):
- index `{base}_{gen}` over hashes with prefix `{base}:{gen}:`
- document key `{base}:{gen}:{org}:{client}:{turn|event}:{item}:{chunk}`
- `{base}:active` hash: the generation searches and writes use (index, prefix, model, dim)

Both rankings of a hybrid search go to the server in one pipelined round trip."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import numpy as np
import redis.asyncio as redis
from redis.exceptions import ResponseError

from switchboard_common.memory import SourceType, Visibility
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

_FIELDS = ("org", "client", "item", "source", "title", "text", "ts", "conv", "chunk")
def _tag(value: str) -> str:
    # Ids are [A-Za-z0-9_-]; '-' is a TAG query operator and must be escaped.
    return value.replace("-", "\\-")


def generation(model: str, dim: int) -> str:
    return f"{hashlib.sha1(model.encode()).hexdigest()[:8]}d{dim}"


def scope_filter(scope: Scope, *, visibility: bool = True) -> str:
    parts = [f"@org:{{{_tag(scope.org)}}}", f"@client:{{{_tag(scope.client)}}}"]
    if visibility:
        parts.append(f"(@vis:{{client}} | @user:{{{_tag(scope.user)}}})" if scope.user
                     else "@vis:{client}")
    if scope.sources:
        parts.append("@source:{" + " | ".join(_tag(s) for s in scope.sources) + "}")
    if scope.since is not None:
        parts.append(f"@ts:[{scope.since} +inf]")
    return " ".join(parts)


def _cmd(conn: Any, *args: Any) -> Any:
    # redis-py's execute_command is untyped; FT.* commands have no typed helper worth using.
    return conn.execute_command(*args)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _rows(reply: Any) -> tuple[int, list[tuple[str, dict[str, bytes]]]]:
    """(total, [(key, fields)]) from an FT.SEARCH reply in either protocol: RESP3 (redis-py's
    default from 8.0) answers a map, RESP2 a flat list."""
    if isinstance(reply, dict):
        rows = [(_text(r[b"id"]), {_text(k): v for k, v in
                                   (r.get(b"extra_attributes") or {}).items()})
                for r in reply[b"results"]]
        return int(reply[b"total_results"]), rows
    total, rest = int(reply[0]), reply[1:]
    if rest and not isinstance(rest[1] if len(rest) > 1 else None, list):  # NOCONTENT
        return total, [(_text(k), {}) for k in rest]
    return total, [(_text(rest[i]), {_text(rest[i + 1][j]): rest[i + 1][j + 1]
                                     for j in range(0, len(rest[i + 1]), 2)})
                   for i in range(0, len(rest), 2)]


def _hit(doc_id: str, f: dict[str, Any]) -> StoredHit:
    conv = f.get("conv", b"").decode()
    return StoredHit(id=doc_id, item_id=f["item"].decode(), source=f["source"].decode(),
                     title=f.get("title", b"").decode(), text=f["text"].decode(),
                     occurred_at=float(f["ts"]), conversation=conv or None,
                     chunk=int(f.get("chunk", b"0")))


class RedisVectorStore(VectorStore):
    def __init__(self, client: redis.Redis, base: str = "sbmem", *, hnsw_m: int = 16,
                 ef_construction: int = 200, ef_runtime: int = 64) -> None:
        self._r = client
        self._base = base
        self._m = hnsw_m
        self._efc = ef_construction
        self._ef = ef_runtime
        self._info: IndexInfo | None = None
        self._prefix = ""

    # ---- lifecycle and generations

    def _names(self, model: str, dim: int) -> tuple[str, str]:
        gen = generation(model, dim)
        return f"{self._base}_{gen}", f"{self._base}:{gen}:"

    async def active(self) -> IndexInfo | None:
        raw = await self._r.hgetall(f"{self._base}:active")
        if not raw:
            return None
        f = {_text(k): _text(v) for k, v in raw.items()}
        return IndexInfo(f["index"], f["model"], int(f["dim"]))

    async def ensure(self, model: str, dim: int) -> IndexInfo:
        index, prefix = self._names(model, dim)
        try:
            await _cmd(self._r, "FT.INFO", index)
        except ResponseError:
            await self._create(index, prefix, dim)
        self._info = IndexInfo(index, model, dim)
        self._prefix = prefix
        return self._info

    async def _create(self, index: str, prefix: str, dim: int) -> None:
        try:
            await _cmd(
                self._r, "FT.CREATE", index, "ON", "HASH", "PREFIX", 1, prefix, "SCHEMA",
                "org", "TAG", "client", "TAG", "vis", "TAG", "user", "TAG", "source", "TAG",
                "item", "TAG", "conv", "TAG", "ts", "NUMERIC", "SORTABLE",
                "title", "TEXT", "WEIGHT", 2.0, "text", "TEXT",
                "emb", "VECTOR", "HNSW", 12, "TYPE", "FLOAT32", "DIM", dim,
                "DISTANCE_METRIC", "COSINE", "M", self._m, "EF_CONSTRUCTION", self._efc,
                "EF_RUNTIME", self._ef,
            )
        except ResponseError as exc:  # another replica created it first
            if "already exists" not in str(exc).lower():
                raise

    async def activate(self) -> None:
        info = self._require()
        await self._r.hset(f"{self._base}:active", mapping={
            "index": info.name, "prefix": self._prefix, "model": info.model, "dim": info.dim})

    async def drop(self, info: IndexInfo) -> None:
        """Drop an old generation with its documents (after a re-index)."""
        with contextlib.suppress(ResponseError):
            await _cmd(self._r, "FT.DROPINDEX", info.name, "DD")

    async def chunks_of(self, info: IndexInfo, batch: int = 256
                        ) -> AsyncIterator[list[Chunk]]:
        """Every chunk stored in a generation, for re-embedding into the active one."""
        prefix = f"{self._base}:{generation(info.model, info.dim)}:"
        cursor: int = 0
        while True:
            cursor, keys = await self._r.scan(cursor, match=f"{prefix}*", count=batch)
            if keys:
                pipe = self._r.pipeline(transaction=False)
                for key in keys:
                    pipe.hgetall(key)
                rows = await pipe.execute()
                yield [_chunk_from_hash({k.decode(): v for k, v in row.items()})
                       for row in rows if row]
            if cursor == 0:
                return

    def _require(self) -> IndexInfo:
        if self._info is None:
            raise RuntimeError("ensure() first")
        return self._info

    async def close(self) -> None:
        await self._r.aclose()

    # ---- writes

    async def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> int:
        self._require()
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        heads = {(c.org, c.client, c.source, c.item_id): c.n_chunks for c in chunks}
        pipe = self._r.pipeline(transaction=False)
        for (org, client, source, item) in heads:
            pipe.hget(self._key_of(org, client, source, item, 0), "n")
        previous = await pipe.execute()
        pipe = self._r.pipeline(transaction=False)
        for ((org, client, source, item), n), old in zip(heads.items(), previous, strict=True):
            # The item got shorter (edited event): drop the chunks it no longer has.
            for stale in range(n, int(old or 0)):
                pipe.unlink(self._key_of(org, client, source, item, stale))
        blobs = np.ascontiguousarray(vectors, dtype=np.float32)
        for chunk, vec in zip(chunks, blobs, strict=True):
            pipe.hset(self._prefix + chunk.doc_id, mapping={
                "org": chunk.org, "client": chunk.client, "vis": chunk.visibility,
                "user": chunk.user or "", "source": chunk.source, "item": chunk.item_id,
                "conv": chunk.conversation or "", "chunk": chunk.chunk, "n": chunk.n_chunks,
                "title": chunk.title, "text": chunk.text, "ts": chunk.occurred_at,
                "emb": vec.tobytes(),
            })
        await pipe.execute()
        return len(chunks)

    def _key_of(self, org: str, client: str, source: str, item: str, chunk: int) -> str:
        kind = "turn" if source == "turn" else "event"
        return f"{self._prefix}{org}:{client}:{kind}:{item}:{chunk}"

    # ---- reads

    async def _ranked(self, scope: Scope, vector: Vectors | None, text: str | None,
                      candidates: int) -> tuple[list[Candidate], list[Candidate]]:
        info = self._require()
        flt = scope_filter(scope)
        pipe = self._r.pipeline(transaction=False)
        if vector is not None:
            blob = np.asarray(vector, dtype=np.float32).tobytes()
            _cmd(pipe, "FT.SEARCH", info.name,
                 f"({flt})=>[KNN {candidates} @emb $vec AS dist]",
                 "PARAMS", 2, "vec", blob, "SORTBY", "dist", "ASC",
                 "RETURN", 1, "ts", "LIMIT", 0, candidates, "DIALECT", 2)
        terms = query_terms(text) if text is not None else []
        if terms:
            _cmd(pipe, "FT.SEARCH", info.name, f"{flt} @title|text:({' | '.join(terms)})",
                 "SCORER", "BM25STD", "RETURN", 3, "ts", "title", "text",
                 "LIMIT", 0, candidates, "DIALECT", 2)
        results = await pipe.execute() if len(pipe) else []
        dense = self._candidates(results.pop(0)) if vector is not None else []
        lexical = self._candidates(results.pop(0)) if terms else []
        return dense, lexical

    def _candidates(self, reply: Any) -> list[Candidate]:
        cut = len(self._prefix)
        out = []
        for key, f in _rows(reply)[1]:
            text = f"{_text(f['title'])} {_text(f['text'])}" if "text" in f else None
            out.append(Candidate(key[cut:], float(f.get("ts", 0.0)), text))
        return out

    async def _fetch(self, scope: Scope, ids: Sequence[str]) -> list[StoredHit]:
        pipe = self._r.pipeline(transaction=False)
        for doc in ids:
            pipe.hmget(self._prefix + doc, list(_FIELDS))
        hits = []
        for doc, values in zip(ids, await pipe.execute(), strict=True):
            f = dict(zip(_FIELDS, values, strict=True))
            # Belt and braces: ids come from a scoped query, but a fetched hash must still
            # belong to the scope before it leaves the store.
            if f["org"] is None or _text(f["org"]) != scope.org \
                    or _text(f["client"]) != scope.client:
                continue
            hits.append(_hit(doc, f))
        return hits

    async def _ids(self, query: str, page: int = 1000) -> list[str]:
        info = self._require()
        reply = await _cmd(self._r, "FT.SEARCH", info.name, query, "NOCONTENT",
                           "LIMIT", 0, page, "DIALECT", 2)
        return [key for key, _ in _rows(reply)[1]]

    async def _delete(self, scope: Scope, what: Forget) -> int:
        query = scope_filter(scope, visibility=False)
        if what.item_id:
            query += f" @item:{{{_tag(what.item_id)}}}"
        if what.source:
            query += f" @source:{{{_tag(what.source)}}}"
        if what.conversation:
            query += f" @conv:{{{_tag(what.conversation)}}} @source:{{turn}}"
        deleted = 0
        # Page until nothing matches: deleting shifts the result window, so always read page 0.
        while keys := await self._ids(query):
            deleted += int(await self._r.delete(*keys))
        return deleted

    async def count(self, scope: Scope) -> int:
        info = self._require()
        reply = await _cmd(self._r, "FT.SEARCH", info.name,
                           scope_filter(scope, visibility=False), "LIMIT", 0, 0, "DIALECT", 2)
        return _rows(reply)[0]


def _chunk_from_hash(f: dict[str, bytes]) -> Chunk:
    s = {k: v.decode() for k, v in f.items() if k != "emb"}
    return Chunk(org=s["org"], client=s["client"], item_id=s["item"], chunk=int(s["chunk"]),
                 n_chunks=int(s["n"]), source=cast(SourceType, s["source"]),
                 visibility=cast(Visibility, s["vis"]),
                 user=s["user"] or None, title=s["title"], text=s["text"],
                 occurred_at=float(s["ts"]), conversation=s["conv"] or None)
