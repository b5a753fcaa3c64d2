"""Vector store adapter for the RediSearch module (Valkey + redisearch.so embedded; Redis Stack
or Redis 8 in production): one vector field (FLAT by default, HNSW as an option), BM25 text
fields and tag filters in one engine.

Layout, per index generation (one generation per embedding model + dimension + layout):
- one index per org, `{base}_{gen}_{org}`, over hashes with prefix `{base}:{gen}:{org}:`
- document key `{base}:{gen}:{org}:{client}:{kind}:{item}:{chunk}`
- `{base}:active` hash: the generation searches and writes use (index, prefix, model, dim)

One index per org (the tenant) gives each org its own term statistics: BM25's document
frequencies and average lengths come from that org's documents only, so one tenant's content
can neither appear in nor move another tenant's keyword ranking (tested). An org's index is
created on its first write; a search of an org with no index finds nothing.

Both rankings of a hybrid search go to the server in one pipelined round trip."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast

import numpy as np
import redis.asyncio as redis
from redis.exceptions import ResponseError

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
from switchboard_memory_indexer.domain.text import STOP_WORDS, query_terms

_FIELDS = ("org", "client", "item", "source", "title", "text", "ts", "conv", "chunk", "kind",
           "at", "meta")
LAYOUT = 4
"""Bumped when the index schema changes: a new generation, filled by the re-index path.
4: a second, contextual vector per chunk (3: FLAT vectors by default; 2: HNSW)."""
VectorIndex = Literal["flat", "hnsw"]
_TAG_SPECIAL = re.compile(r"([^A-Za-z0-9_])")


def _tag(value: str) -> str:
    # Inside a TAG query every punctuation character is syntax ('-', ':', '.', '@'...): escape
    # all of them, so an item id like "D1:3" or "a.b@c" matches itself and nothing else.
    return _TAG_SPECIAL.sub(r"\\\1", value)


def generation(model: str, dim: int, vectors: VectorIndex = "flat") -> str:
    suffix = "h" if vectors == "hnsw" else ""
    return f"{hashlib.sha1(model.encode()).hexdigest()[:8]}d{dim}l{LAYOUT}{suffix}"


def when_words(ts: float) -> str:
    """The item's date in words ("Monday 8 May 2023"), indexed as text so a question that names
    a month or a year matches the items of that time by keyword."""
    return datetime.fromtimestamp(ts, UTC).strftime("%A %-d %B %Y")


def scope_filter(scope: Scope, *, visibility: bool = True) -> str:
    # No @org clause: every query runs on the org's own index, whose key prefix holds only that
    # org's documents, so the clause only added an intersection with every document of the org
    # (100k postings at 100k items) to each query. Fetched hashes are still checked (_fetch).
    parts = [f"@client:{{{_tag(scope.client)}}}"]
    if visibility:
        parts.append(f"(@vis:{{client}} | @user:{{{_tag(scope.user)}}})" if scope.user
                     else "@vis:{client}")
    if scope.sources:
        parts.append("@source:{" + " | ".join(_tag(s) for s in scope.sources) + "}")
    if scope.kinds:
        parts.append("@kind:{" + " | ".join(_tag(k) for k in scope.kinds) + "}")
    if scope.since is not None or scope.until is not None:
        low = "-inf" if scope.since is None else repr(scope.since)
        high = "+inf" if scope.until is None else repr(scope.until)
        parts.append(f"@ts:[{low} {high}]")
    return " ".join(parts)


def keyword_query(flt: str, terms: list[str]) -> str:
    """The BM25 side: items of the scope holding any of the terms, scored by all they hold.

    The plain form `<filters> @f:(a | b | c)` is mis-scored by the engine: a union inside an
    intersection stops at its first matching child, so an item holding all three terms scores
    like one holding only `a` (measured: the item with the invoice number a question named
    ranked below items sharing only "invoice"). Each term is therefore also added as an optional
    clause (`~`), which the engine scores on its own, and the union only says that at least one
    term must match (a query of nothing but optional clauses would match every item)."""
    fields = "@title|text|when"
    return f"{flt} {fields}:({' | '.join(terms)}) " + " ".join(
        f"~{fields}:({t})" for t in terms)


def _missing_index(exc: ResponseError) -> bool:
    text = str(exc).lower()
    return "no such index" in text or "unknown index" in text


def _cmd(conn: Any, *args: Any) -> Any:
    # redis-py's execute_command is untyped; FT.* commands have no typed helper worth using.
    return conn.execute_command(*args)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _rows(reply: Any, scores: bool = False) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """(total, [(key, fields)]) from an FT.SEARCH reply in either protocol: RESP3 (redis-py's
    default from 8.0) answers a map, RESP2 a flat list. With `scores` (WITHSCORES), each row's
    score is under the field name `__score`."""
    if isinstance(reply, dict):
        rows = [(_text(r[b"id"]), {_text(k): v for k, v in
                                   (r.get(b"extra_attributes") or {}).items()}
                 | ({"__score": r[b"score"]} if scores else {}))
                for r in reply[b"results"]]
        return int(reply[b"total_results"]), rows
    total, rest = int(reply[0]), reply[1:]
    if rest and not scores and not isinstance(rest[1] if len(rest) > 1 else None, list):
        # NOCONTENT: ids only
        return total, [(_text(k), {}) for k in rest]
    step = 3 if scores else 2
    out = []
    for i in range(0, len(rest), step):
        fields = rest[i + step - 1]
        row: dict[str, Any] = {_text(fields[j]): fields[j + 1] for j in range(0, len(fields), 2)}
        if scores:
            row["__score"] = rest[i + 1]
        out.append((_text(rest[i]), row))
    return total, out


def _hit(doc_id: str, f: dict[str, Any]) -> StoredHit:
    conv = (f.get("conv") or b"").decode()
    return StoredHit(id=doc_id, item_id=f["item"].decode(), source=f["source"].decode(),
                     title=(f.get("title") or b"").decode(), text=f["text"].decode(),
                     occurred_at=float(f["ts"]), conversation=conv or None,
                     chunk=int(f.get("chunk") or b"0"),
                     kind=(f.get("kind") or b"event").decode(),
                     indexed_at=float(f["at"]) if f.get("at") else None,
                     metadata=json.loads(f["meta"]) if f.get("meta") else {})


class RedisVectorStore(VectorStore):
    """`vectors`: "flat" (default) or "hnsw". Every query is filtered to one client, and the
    engine answers a filtered KNN by brute force over the filter's result whenever the client
    is a small part of the org's index, which is the common case: HNSW then only costs (its
    graph made inserts 17x slower: 590 vs 9,900 vectors/s with 20k items on this machine) and
    filtered queries cost the same (0.4 ms p50 either way). HNSW pays off only for a client
    with a very large memory (brute force over 100k vectors of one client: 20 ms p50 on a
    loaded 2-core machine, against under 1 ms with HNSW)."""

    def __init__(self, client: redis.Redis, base: str = "sbmem", *,
                 vectors: VectorIndex = "flat", hnsw_m: int = 16, ef_construction: int = 200,
                 ef_runtime: int = 64) -> None:
        self._r = client
        self._base = base
        self._vectors = vectors
        self._m = hnsw_m
        self._efc = ef_construction
        self._ef = ef_runtime
        self._info: IndexInfo | None = None
        self._prefix = ""
        self._orgs: set[str] = set()
        """Orgs whose index this process has ensured (FT.CREATE once per org and process)."""

    # ---- lifecycle and generations

    def _names(self, model: str, dim: int) -> tuple[str, str]:
        gen = generation(model, dim, self._vectors)
        return f"{self._base}_{gen}", f"{self._base}:{gen}:"

    def _index(self, org: str) -> str:
        return f"{self._require().name}_{org}"

    async def active(self) -> IndexInfo | None:
        raw = await self._r.hgetall(f"{self._base}:active")
        if not raw:
            return None
        f = {_text(k): _text(v) for k, v in raw.items()}
        return IndexInfo(f["index"], f["model"], int(f["dim"]))

    async def ensure(self, model: str, dim: int) -> IndexInfo:
        """Select the generation; the per-org indexes are created on each org's first write."""
        index, prefix = self._names(model, dim)
        self._info = IndexInfo(index, model, dim)
        self._prefix = prefix
        self._orgs.clear()
        return self._info

    async def _ensure_org(self, org: str) -> None:
        if org in self._orgs:
            return
        info = self._require()
        try:
            await _cmd(
                self._r, "FT.CREATE", self._index(org), "ON", "HASH",
                "PREFIX", 1, f"{self._prefix}{org}:",
                # No initial scan: the org has no documents yet (its index is created before
                # its first write), and the engine's scan walks the whole keyspace while the
                # first writes land. A document written during that scan is indexed twice (by
                # the write and again by the scan), which corrupts the index's BM25 statistics
                # for good: measured with 300k other keys, the org's scores went from 3.1 to
                # 239 and its keyword ranking flipped (test_term_statistics_are_per_tenant,
                # flaky in full runs where the session's Valkey holds many keys).
                "SKIPINITIALSCAN",
                # The engine's stop words, stated: the client drops exactly these (text.py).
                "STOPWORDS", len(STOP_WORDS), *STOP_WORDS, "SCHEMA",
                "org", "TAG", "client", "TAG", "vis", "TAG", "user", "TAG", "source", "TAG",
                "kind", "TAG", "item", "TAG", "conv", "TAG", "ts", "NUMERIC", "SORTABLE",
                "title", "TEXT", "WEIGHT", 2.0, "text", "TEXT", "when", "TEXT",
                "emb", "VECTOR", *self._vector_spec(info.dim),
                "ctx", "VECTOR", *self._vector_spec(info.dim),
            )
        except ResponseError as exc:  # another replica (or an earlier run) created it
            if "already exists" not in str(exc).lower():
                raise
        self._orgs.add(org)

    def _vector_spec(self, dim: int) -> list[Any]:
        spec: list[Any] = ["TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", "COSINE"]
        if self._vectors == "hnsw":
            spec += ["M", self._m, "EF_CONSTRUCTION", self._efc, "EF_RUNTIME", self._ef]
        return [self._vectors.upper(), len(spec), *spec]

    async def activate(self) -> None:
        info = self._require()
        await self._r.hset(f"{self._base}:active", mapping={
            "index": info.name, "prefix": self._prefix, "model": info.model, "dim": info.dim})

    async def drop(self, info: IndexInfo) -> None:
        """Drop a generation's indexes with their documents (after a re-index)."""
        for name in await _cmd(self._r, "FT._LIST"):
            name = _text(name)
            # Generations before per-org indexes had a single index named exactly info.name.
            if name == info.name or name.startswith(f"{info.name}_"):
                with contextlib.suppress(ResponseError):
                    await _cmd(self._r, "FT.DROPINDEX", name, "DD")
        if self._info is not None and self._info.name == info.name:
            self._orgs.clear()

    async def chunks_of(self, info: IndexInfo, batch: int = 256
                        ) -> AsyncIterator[list[Chunk]]:
        """Every chunk stored in a generation, for re-embedding into the active one."""
        prefix = f"{self._base}:{info.name.removeprefix(self._base + '_')}:"
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

    async def ready(self) -> bool:
        if self._info is None:
            return False
        try:
            return bool(await self._r.ping())
        except (ConnectionError, OSError, redis.RedisError):
            return False

    # ---- writes

    async def upsert(self, chunks: Sequence[Chunk], vectors: Vectors,
                     context_vectors: Vectors | None = None) -> int:
        self._require()
        if context_vectors is None:
            context_vectors = vectors  # rows of chunks without context are not written
        if not len(chunks) == len(vectors) == len(context_vectors):
            raise ValueError("one vector per chunk")
        for org in {c.org for c in chunks}:
            await self._ensure_org(org)
        heads = {(c.org, c.client, c.kind, c.item_id): c.n_chunks for c in chunks}
        pipe = self._r.pipeline(transaction=False)
        for (org, client, kind, item) in heads:
            pipe.hget(self._key_of(org, client, kind, item, 0), "n")
        previous = await pipe.execute()
        pipe = self._r.pipeline(transaction=False)
        for ((org, client, kind, item), n), old in zip(heads.items(), previous, strict=True):
            # The item got shorter (edited event): drop the chunks it no longer has.
            for stale in range(n, int(old or 0)):
                pipe.unlink(self._key_of(org, client, kind, item, stale))
        blobs = np.ascontiguousarray(vectors, dtype=np.float32)
        second = np.ascontiguousarray(context_vectors, dtype=np.float32)
        now = time.time()
        for chunk, vec, ctx in zip(chunks, blobs, second, strict=True):
            key = self._prefix + chunk.doc_id
            second_vector: dict[str, Any] = {}
            if chunk.context:
                # The context itself is kept (not indexed) for re-embedding on a model change.
                second_vector = {"cx": chunk.context, "hc": "1", "ctx": ctx.tobytes()}
            else:
                # No second vector (see ports.contextual_ranking); an edit may have dropped one.
                pipe.hdel(key, "cx", "hc", "ctx")
            pipe.hset(key, mapping=second_vector | {
                "org": chunk.org, "client": chunk.client, "vis": chunk.visibility,
                "user": chunk.user or "", "source": chunk.source, "kind": chunk.kind,
                "item": chunk.item_id, "conv": chunk.conversation or "", "chunk": chunk.chunk,
                "n": chunk.n_chunks, "title": chunk.title, "text": chunk.text,
                "when": when_words(chunk.occurred_at), "ts": chunk.occurred_at, "at": now,
                "meta": json.dumps(chunk.metadata, default=str) if chunk.metadata else "",
                "emb": vec.tobytes(),
            })
        await pipe.execute()
        return len(chunks)

    def _key_of(self, org: str, client: str, kind: str, item: str, chunk: int) -> str:
        return f"{self._prefix}{org}:{client}:{kind}:{item}:{chunk}"

    # ---- reads

    async def _ranked(self, scope: Scope, vector: Vectors | None, text: str | None,
                      candidates: int) -> tuple[list[Candidate], list[Candidate], list[Candidate]]:
        index = self._index(scope.org)
        flt = scope_filter(scope)
        pipe = self._r.pipeline(transaction=False)
        if vector is not None:
            blob = np.asarray(vector, dtype=np.float32).tobytes()
            # The second KNN only visits the chunks that have a contextual vector.
            for field in ("emb", "ctx"):
                _cmd(pipe, "FT.SEARCH", index,
                     f"({flt})=>[KNN {candidates} @{field} $vec AS dist]",
                     "PARAMS", 2, "vec", blob, "SORTBY", "dist", "ASC",
                     "RETURN", 4, "ts", "kind", "hc", "dist", "LIMIT", 0, candidates,
                     "DIALECT", 2)
        # No term left (a query of stop words or punctuation only) means no keyword query at
        # all: an empty text clause would match every item of the client.
        terms = query_terms(text) if text is not None else []
        if terms:
            _cmd(pipe, "FT.SEARCH", index, keyword_query(flt, terms),
                 "SCORER", "BM25STD", "WITHSCORES", "RETURN", 2, "ts", "kind",
                 "LIMIT", 0, candidates, "DIALECT", 2)
        if not len(pipe):
            return [], [], []
        try:
            results = await pipe.execute()
        except ResponseError as exc:
            if _missing_index(exc):  # the org has never written anything
                return [], [], []
            raise
        dense = self._candidates(results.pop(0)) if vector is not None else []
        contextual = self._candidates(results.pop(0)) if vector is not None else []
        lexical = self._candidates(results.pop(0), scores=True) if terms else []
        return dense, lexical, contextual

    def _candidates(self, reply: Any, scores: bool = False) -> list[Candidate]:
        cut = len(self._prefix)
        return [Candidate(key[cut:], float(f.get("ts", 0.0)), _text(f.get("kind", b"event")),
                          float(f["__score"]) if scores else 1.0 - float(f.get("dist", 1.0)),
                          in_context=bool(f.get("hc")))
                for key, f in _rows(reply, scores)[1]]

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

    async def _ids(self, org: str, query: str, page: int = 1000) -> list[str]:
        try:
            reply = await _cmd(self._r, "FT.SEARCH", self._index(org), query, "NOCONTENT",
                               "LIMIT", 0, page, "DIALECT", 2)
        except ResponseError as exc:
            if _missing_index(exc):
                return []
            raise
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
        while keys := await self._ids(scope.org, query):
            deleted += int(await self._r.delete(*keys))
        return deleted

    async def count(self, scope: Scope) -> int:
        try:
            reply = await _cmd(self._r, "FT.SEARCH", self._index(scope.org),
                               scope_filter(scope, visibility=False), "LIMIT", 0, 0,
                               "DIALECT", 2)
        except ResponseError as exc:
            if _missing_index(exc):
                return 0
            raise
        return _rows(reply)[0]


def _chunk_from_hash(f: dict[str, bytes]) -> Chunk:
    s = {k: v.decode() for k, v in f.items() if k not in ("emb", "ctx")}
    # Chunks of a generation before kinds existed: a turn was one "User: .. Assistant: .." item.
    kind = s.get("kind") or ("user" if s["source"] == "turn" else "event")
    return Chunk(org=s["org"], client=s["client"], item_id=s["item"], chunk=int(s["chunk"]),
                 n_chunks=int(s["n"]), source=cast(SourceType, s["source"]),
                 visibility=cast(Visibility, s["vis"]),
                 user=s["user"] or None, title=s["title"], text=s["text"],
                 occurred_at=float(s["ts"]), conversation=s["conv"] or None,
                 kind=cast(MemoryKind, kind),
                 metadata=json.loads(s["meta"]) if s.get("meta") else {},
                 context=s.get("cx", ""))
