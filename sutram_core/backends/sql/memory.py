"""The SQL memory backend (SQLite and PostgreSQL).

Keyword search: SQLite FTS5 (BM25); PostgreSQL full-text search ranked by IDF (see
``_keyword_plan``). Both only find candidates: :func:`sutram_core.memory.ranking.fuse` scores them.
Vector search: PostgreSQL uses pgvector with an HNSW index per dimension count (iterative
scans, so filters do not starve the index; indexing off the write path,
:mod:`.memory_pgvector`). SQLite keeps each vector as float32 bytes and searches them with
NumPy through an in-process index per tenant (:mod:`.memory_index`), kept in step with
other processes by the tenant's change number.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
from sqlalchemy import event, text

from sutram_core.backends.sql import memory_field_vectors as field_vectors
from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.memory_field_vectors import FieldVectorIndex
from sutram_core.backends.sql.memory_index import VectorIndex
from sutram_core.backends.sql.memory_pgvector import PgVectorIndex
from sutram_core.backends.sql.memory_sql import (
    PgVector,
    fts5_query,
    keyword_terms,
    pk_in,
    register_pg_vector_dumper,
    where_clause,
)
from sutram_core.errors import InvalidMemoryError
from sutram_core.memory.ranking import fuse, recency_factor
from sutram_core.memory.records import (
    MemoryKind,
    MemoryRecord,
    NamespaceMatch,
    Provenance,
    SearchHit,
    decode_namespace,
    encode_namespace,
    from_micros,
    to_micros,
)
from sutram_core.memory.store import SearchRequest, Write

__all__ = ["SqlMemoryBackend"]

_COLS = ("pk", "id", "namespace", "key", "kind", "text", "value", "metadata", "provenance", "version",
         "supersedes", "created_at", "updated_at", "valid_from", "valid_to", "ttl_seconds", "expires_at")
_SELECT = ", ".join(f"m.{c}" for c in _COLS)
_INSERT_COLS = ("tenant_id", "id", "namespace", "depth", "key", "kind", "text", "value", "metadata", "embedding",
                "provenance", "version", "supersedes", "created_at", "updated_at", "valid_from", "valid_to",
                "ttl_seconds", "expires_at", "seq")
_UPDATE_COLS = ("kind", "text", "value", "metadata", "embedding", "provenance", "updated_at", "ttl_seconds",
                "expires_at", "seq", "supersedes")
_CANDIDATES = 40  # per ranked list, at least: fusion looks this deep
_FTS_POOL_MAX = 2000  # full-text matches filtered in a first try; a larger pool reads them all
_DF_CAP = 1000  # PostgreSQL keyword search: document frequencies are counted up to this
_KEY_LOCK_SALT = 0x53757472_4d656d  # seeds the hash of PostgreSQL's per-key advisory locks


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        raise InvalidMemoryError(f"a memory's value and metadata must be JSON-serializable: {exc}") from exc


def _loads(raw: Any) -> Any:
    return raw if isinstance(raw, (dict, list)) else orjson.loads(raw)


def _record(row: Sequence[Any], tenant: str) -> MemoryRecord:
    (_pk, ident, ns, key, kind, txt, value, meta, prov, version, supersedes, created, updated, vfrom, vto,
     ttl, expires) = row
    return MemoryRecord(
        namespace=decode_namespace(ns), key=key, value=_loads(value), text=txt, kind=MemoryKind(kind),
        metadata=_loads(meta), provenance=Provenance.from_dict(orjson.loads(prov) if prov else None),
        ttl_seconds=ttl, id=ident, tenant_id=tenant, version=version, created_at=from_micros(created),
        updated_at=from_micros(updated), valid_from=from_micros(vfrom), valid_to=from_micros(vto),
        expires_at=from_micros(expires), supersedes=supersedes,
    )


class SqlMemoryBackend:
    """Memories in the Sutram SQL database (see the module docstring)."""

    serialized_add = True  # "add" writes find their near-duplicate inside the write (_resolve_add)

    field_vectors = True  # a record may hold one vector per index field (memory_field_vectors.py)

    def __init__(self, db: Database, *, owns_db: bool = True, hnsw_m: int = 16, hnsw_ef_construction: int = 64,
                 hnsw_ef_search: int = 500, deferred_vector_index: bool = True,
                 vector_indexer_thread: bool = True) -> None:
        self.db = db
        self.dialect = db.backend
        self._owns_db = owns_db
        # SQLite: one in-process vector index per tenant, the least recently searched dropped
        # beyond max_vector_indexes (it reloads from the table when that tenant searches again)
        self._indexes: OrderedDict[str, VectorIndex] = OrderedDict()
        self.max_vector_indexes = 32
        self._lock = threading.Lock()
        # SQLite full-text: the share of the best matches the filters kept, by tenant and filter
        self._fts_kept: dict[tuple[str, str], float] = {}
        self._field_indexes: OrderedDict[str, FieldVectorIndex] = OrderedDict()
        self._field_table = False  # whether sutram_memory_field_vectors exists (checked until it does)
        self._field_table_recheck = 0.0  # monotonic time of the next check by a search
        self._halves_pool: ThreadPoolExecutor | None = None
        self._halves_pid = 0
        self._closed = False
        self.pgvector: PgVectorIndex | None = None
        if self.dialect == "postgresql":
            self.pgvector = PgVectorIndex(db, m=hnsw_m, ef_construction=hnsw_ef_construction,
                                          ef_search=hnsw_ef_search, deferred=deferred_vector_index,
                                          background=vector_indexer_thread)
            register_pg_vector_dumper(getattr(db.engine.dialect, "_psycopg_adapters_map", None))
            event.listen(db.engine, "connect", self.pgvector.configure_session)
            # sessions opened before (a saver on the same Database, its kept and pooled
            # connections) would search without those settings: they are let go
            db.drop_sessions()

    async def offload(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the database's thread pool."""
        return await self.db.offload(fn, *args, **kwargs)

    def setup(self) -> None:
        """Create or upgrade the schema (idempotent)."""
        self.db.setup()

    def close(self) -> None:
        if self.pgvector is not None:
            self.pgvector.stop()
        with self._lock:
            self._closed = True
            halves, self._halves_pool = self._halves_pool, None
        if halves is not None and self._halves_pid == os.getpid():
            halves.shutdown(wait=True)
        if self._owns_db:
            self.db.close()

    # -- writes ---------------------------------------------------------------------------

    def apply(self, tenant: str, writes: Sequence[Write]) -> list[MemoryRecord | None]:
        vectors = False
        if self.pgvector is not None:
            for dims in {int(np.shape(w.record.embedding)[-1]) for w in writes
                         if w.record is not None and w.record.embedding is not None}:
                self.pgvector.ensure(dims)
                vectors = True
            self.pgvector.column_exists()
        out = self.db.run(self._apply_plan(tenant, list(writes)))
        if vectors and self.pgvector is not None:
            self.pgvector.written()
        return out

    def _vector_param(self, embedding: Any) -> Any:
        if embedding is None:
            return None
        arr = np.asarray(embedding, dtype=np.float32)
        if arr.ndim == 2:  # one vector per index field: the first stays on the row (memory_field_vectors.py)
            arr = arr[0]
        return PgVector(arr) if self.dialect == "postgresql" else arr.tobytes()

    def _field_table_seen(self) -> bool:
        """For searches: whether the table of extra vectors exists, asking the database at
        most once a second until it does (asking on every search cost 0.4 ms of a 2.6 ms
        SQLite search; a table another process just created is seen within the second)."""
        if not self._field_table and time.monotonic() >= self._field_table_recheck:
            self._field_table_recheck = time.monotonic() + 1.0
            self.db.run(self._field_vectors_ready(), write=False)
        return self._field_table

    def _field_vectors_ready(self) -> Plan[bool]:
        """Whether the table of extra vectors exists (once it does, it stays)."""
        if not self._field_table:
            self._field_table = yield from field_vectors.exists_plan(self.dialect)
        return self._field_table

    def _apply_plan(self, tenant: str, writes: list[Write]) -> Plan[list[MemoryRecord | None]]:
        seq = 0
        if self.dialect == "sqlite":  # the change number feeds the in-process vector index only
            rows = yield Step(text(
                "INSERT INTO sutram_memory_state (tenant_id, seq, deletes) VALUES (:t, 1, 0) "
                "ON CONFLICT (tenant_id) DO UPDATE SET seq = sutram_memory_state.seq + 1 RETURNING seq"
            ), {"t": tenant})
            seq = int(rows[0][0])
        keys = sorted({w.key for w in writes})
        current: dict[tuple[str, str], tuple[Any, ...]] = {}
        if keys and self.dialect == "postgresql":
            # Writers of one key take turns (SQLite's BEGIN IMMEDIATE already serializes all
            # writers): without this, two transactions at READ COMMITTED both read "no current
            # row" (or the same current version) and both insert, and one fails on the unique
            # index of current rows. The lock is taken before the read below, so each writer
            # sees the row the previous one committed: the last put wins, versions follow each
            # other. Locks are taken in hash order, so two batches cannot deadlock.
            yield Step(text(
                "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT hashtextextended(k, :salt) AS h "
                "FROM unnest(CAST(:refs AS text[])) AS k ORDER BY h) AS locks"
            ), {"salt": _KEY_LOCK_SALT,
                "refs": sorted({f"{tenant}\x1e{encode_namespace(w.namespace)}\x1e{w.key}" for w in writes})})
        if keys:
            found = yield Step(text(
                "SELECT namespace, key, id, created_at, version, valid_from FROM sutram_memories "
                "WHERE tenant_id = :t AND valid_to IS NULL AND key IN :keys"
            ).bindparams(_expanding("keys")), {"t": tenant, "keys": keys})
            current = {(r[0], r[1]): tuple(r[2:]) for r in found}
        pg_vec = self.pgvector is not None and bool(self.pgvector.has_column)
        vec = "CAST(:embedding AS vector)" if pg_vec else ":embedding"
        emb_col = "vec" if pg_vec else "embedding"
        value_sql = "CAST(:value AS jsonb)" if self.dialect == "postgresql" else ":value"
        meta_sql = "CAST(:metadata AS jsonb)" if self.dialect == "postgresql" else ":metadata"
        placeholders = {c: f":{c}" for c in _INSERT_COLS}
        placeholders.update(embedding=vec, value=value_sql, metadata=meta_sql)
        # PostgreSQL: a new or changed vector waits for the indexer (memory_pgvector.py)
        pending = ", vec_pending" if pg_vec else ""
        pending_value = ", :vec_pending" if pg_vec else ""
        insert_sql = text(
            f"INSERT INTO sutram_memories ({', '.join(emb_col if c == 'embedding' else c for c in _INSERT_COLS)}"
            f"{pending}) VALUES ({', '.join(placeholders[c] for c in _INSERT_COLS)}{pending_value})"
        )
        update_sql = text(
            "UPDATE sutram_memories SET "
            + ", ".join(f"{emb_col if c == 'embedding' else c} = {placeholders[c]}" for c in _UPDATE_COLS)
            + (", vec_pending = :vec_pending" if pg_vec else "")
            + " WHERE tenant_id = :tenant_id AND id = :id"
        )
        defer = pg_vec and self.pgvector is not None and self.pgvector.deferred
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        out: list[MemoryRecord | None] = []
        replaced: list[str] = []  # ids of rows rewritten in place
        extras: list[tuple[str, np.ndarray]] = []  # (id, vectors after the first)
        deleted = 0
        for w in writes:
            if w.op == "add":
                yield from self._flush(insert_sql, inserts, update_sql, updates)
                w = yield from self._resolve_add(tenant, w, current)
            ns = encode_namespace(w.namespace)
            existing = current.get((ns, w.key))
            if w.op in ("close", "delete", "meta"):
                yield from self._flush(insert_sql, inserts, update_sql, updates)
                if w.op == "meta":
                    yield from self._merge_metadata(tenant, ns, w, seq)
                elif w.op == "close":
                    if existing is None:
                        # read under the key's lock: a concurrent supersede closed it first
                        raise InvalidMemoryError(
                            f"nothing to supersede: no current memory {w.key!r} in {w.namespace!r} "
                            "(another writer closed or deleted it); read the current fact and try again")
                    yield Step(text(
                        "UPDATE sutram_memories SET valid_to = :at, seq = :seq WHERE tenant_id = :t "
                        "AND namespace = :ns AND key = :k AND valid_to IS NULL"
                    ), {"at": w.at, "seq": seq, "t": tenant, "ns": ns, "k": w.key})
                else:
                    key_params = {"t": tenant, "ns": ns, "k": w.key}
                    if self.dialect == "sqlite" and (yield from self._field_vectors_ready()):
                        yield from field_vectors.delete_plan(
                            "tenant_id = :t AND namespace = :ns AND key = :k", key_params)
                    deleted += (yield Step(text(
                        "DELETE FROM sutram_memories WHERE tenant_id = :t AND namespace = :ns AND key = :k"
                    ), key_params))
                current.pop((ns, w.key), None)
                out.append(None)
                continue
            rec = w.record
            assert rec is not None
            rec.tenant_id = tenant
            rec.updated_at = from_micros(w.at)
            rec.expires_at = from_micros(w.at + int(rec.ttl_seconds * 1e6)) if rec.ttl_seconds else None
            params = {
                "tenant_id": tenant, "namespace": ns, "depth": len(w.namespace), "key": w.key, "kind": rec.kind.value,
                "text": rec.text, "value": _json(rec.value), "metadata": _json(rec.metadata),
                "embedding": self._vector_param(rec.embedding),
                "provenance": _json(rec.provenance.as_dict()) if rec.provenance.as_dict() else None,
                "updated_at": w.at, "ttl_seconds": rec.ttl_seconds,
                "expires_at": to_micros(rec.expires_at) if rec.expires_at else None, "seq": seq,
                "supersedes": rec.supersedes, "valid_to": None,
                "vec_pending": defer and rec.embedding is not None,
            }
            if existing is not None and w.op == "put":
                rec.id, created, rec.version, vfrom = existing[0], existing[1], existing[2], existing[3]
                rec.created_at, rec.valid_from = from_micros(created), from_micros(vfrom)
                params["id"] = rec.id
                updates.append(params)
                replaced.append(rec.id)
            else:
                if existing is not None:  # "version": close the current one, add the next
                    yield from self._flush(insert_sql, inserts, update_sql, updates)
                    yield Step(text(
                        "UPDATE sutram_memories SET valid_to = :at, seq = :seq WHERE tenant_id = :t AND id = :id"
                    ), {"at": w.at, "seq": seq, "t": tenant, "id": existing[0]})
                    rec.version = existing[2] + 1
                    rec.supersedes = rec.supersedes or existing[0]
                    params["supersedes"] = rec.supersedes
                rec.id = rec.id or _new_id()
                rec.created_at = from_micros(w.at)
                rec.valid_from = rec.valid_from or rec.created_at
                params.update(id=rec.id, version=rec.version, created_at=w.at,
                              valid_from=to_micros(rec.valid_from) if rec.valid_from else w.at)
                inserts.append(params)
                current[(ns, w.key)] = (rec.id, w.at, rec.version, params["valid_from"])
            rows = field_vectors.vector_rows(rec.embedding)
            if rows is not None and len(rows) > 1:
                extras.append((rec.id, rows[1:]))
            out.append(rec)
        yield from self._flush(insert_sql, inserts, update_sql, updates)
        # the records' vectors after the first (memory_field_vectors.py); a rewritten record
        # drops the ones it had
        if extras and not self._field_table:
            yield from field_vectors.create_plan(self.dialect)
            self._field_table = True
        if extras or (replaced and (yield from self._field_vectors_ready())):
            yield from field_vectors.write_plan(self.dialect, tenant, replaced, extras, self._vector_param)
        if deleted and self.dialect == "sqlite":
            yield Step(text("UPDATE sutram_memory_state SET deletes = deletes + 1 WHERE tenant_id = :t"), {"t": tenant})
        return out

    def _resolve_add(self, tenant: str, w: Write, current: dict[tuple[str, str], tuple[Any, ...]]) -> Plan[Write]:
        """An "add" as the put (or procedural version) it becomes: of the near-duplicate's key
        when the namespace holds one of the same kind at or above ``w.dedupe``, else of its own
        new key. Decided inside the write transaction, one add of a namespace at a time
        (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock on the namespace), so two
        processes adding one fact at once keep one memory."""
        rec = w.record
        assert rec is not None and rec.embedding is not None and w.dedupe is not None
        ns = encode_namespace(w.namespace)
        op = "version" if rec.kind is MemoryKind.PROCEDURAL else "put"
        if self.dialect == "postgresql":
            yield Step(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, :salt))"),
                       {"k": f"{tenant}\x1e{ns}\x1eadd", "salt": _KEY_LOCK_SALT})
        where = where_clause(self.dialect, tenant, namespace_prefix=w.namespace, exact_namespace=True,
                             kinds=(rec.kind.value,), now=w.at)
        query = field_vectors.vector_rows(rec.embedding)[0]  # type: ignore[index]
        rows: dict[int, Any] = {}
        if self.pgvector is not None:
            hits = yield from self.pgvector.candidates_plan(where, _SELECT, query, 1, rows)
        else:  # exact over the namespace's vectors of that kind
            hits = yield from VectorIndex._scan_plan(query, where, 1)
        if not hits or hits[0][1] < w.dedupe:
            return replace(w, op=op)
        if hits[0][0] not in rows:
            found = yield Step(text(f"SELECT {_SELECT} FROM sutram_memories m WHERE m.pk = :pk"), {"pk": hits[0][0]})
            rows[hits[0][0]] = found[0]
        key = str(rows[hits[0][0]][3])
        if self.dialect == "postgresql":  # the near-duplicate's own writers take turns with this one
            yield Step(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, :salt))"),
                       {"k": f"{tenant}\x1e{ns}\x1e{key}", "salt": _KEY_LOCK_SALT})
        found = yield Step(text(
            "SELECT namespace, key, id, created_at, version, valid_from FROM sutram_memories "
            "WHERE tenant_id = :t AND valid_to IS NULL AND namespace = :ns AND key = :k"
        ), {"t": tenant, "ns": ns, "k": key})
        for r in found:
            current[(r[0], r[1])] = tuple(r[2:])
        rec.key = key
        return replace(w, op=op, key=key)

    def _merge_metadata(self, tenant: str, ns: str, w: Write, seq: int) -> Plan[None]:
        rows = yield Step(text(
            "SELECT id, metadata FROM sutram_memories WHERE tenant_id = :t AND namespace = :ns AND key = :k "
            "AND valid_to IS NULL"
        ), {"t": tenant, "ns": ns, "k": w.key})
        if not rows:
            return
        merged = {**_loads(rows[0][1]), **(w.metadata or {})}
        meta_sql = "CAST(:m AS jsonb)" if self.dialect == "postgresql" else ":m"
        yield Step(text(
            f"UPDATE sutram_memories SET metadata = {meta_sql}, updated_at = :at, seq = :seq "
            "WHERE tenant_id = :t AND id = :id"
        ), {"m": _json(merged), "at": w.at, "seq": seq, "t": tenant, "id": rows[0][0]})

    @staticmethod
    def _flush(insert_sql: Any, inserts: list[dict[str, Any]], update_sql: Any,
               updates: list[dict[str, Any]]) -> Plan[None]:
        if inserts:
            yield Step(insert_sql, list(inserts))
            inserts.clear()
        if updates:
            yield Step(update_sql, list(updates))
            updates.clear()

    def refresh_ttl(self, tenant: str, ids: Sequence[str], now: int) -> None:
        if self.db.read_only:
            return  # a read-only database keeps its expiry times; reads still hide what expired

        def plan() -> Plan[None]:
            yield Step(text(
                "UPDATE sutram_memories SET expires_at = :now + CAST(ttl_seconds * 1000000 AS BIGINT) "
                "WHERE tenant_id = :t AND ttl_seconds IS NOT NULL AND id IN :ids"
            ).bindparams(_expanding("ids")), {"now": now, "t": tenant, "ids": list(ids)})

        self.db.run(plan())

    def sweep(self, now: int) -> int:
        def plan() -> Plan[int]:
            tenants = yield Step(text(
                "SELECT DISTINCT tenant_id FROM sutram_memories WHERE expires_at IS NOT NULL AND expires_at <= :now"
            ), {"now": now})
            if not tenants:
                return 0
            if self.dialect == "sqlite" and (yield from self._field_vectors_ready()):
                yield from field_vectors.delete_plan("expires_at IS NOT NULL AND expires_at <= :now", {"now": now})
            n = yield Step(text(
                "DELETE FROM sutram_memories WHERE expires_at IS NOT NULL AND expires_at <= :now"
            ), {"now": now})
            yield Step(text(
                "UPDATE sutram_memory_state SET deletes = deletes + 1 WHERE tenant_id IN :ts"
            ).bindparams(_expanding("ts")), {"ts": [r[0] for r in tenants]})
            return int(n)

        return self.db.run(plan())

    # -- reads ----------------------------------------------------------------------------

    def get(self, tenant: str, refs: Sequence[tuple[tuple[str, ...], str]], as_of: int | None,
            now: int) -> list[MemoryRecord | None]:
        def plan() -> Plan[list[MemoryRecord | None]]:
            out: list[MemoryRecord | None] = []
            for ns, key in refs:
                w = where_clause(self.dialect, tenant, namespace_prefix=ns, exact_namespace=True, as_of=as_of, now=now)
                rows = yield Step(text(f"SELECT {_SELECT} FROM sutram_memories m WHERE {w.sql()} "
                                       f"AND m.key = :key"), {**w.params, "key": key})
                out.append(_record(rows[0], tenant) if rows else None)
            return out

        return self.db.run(plan(), write=False)

    def history(self, tenant: str, namespace: tuple[str, ...], key: str) -> list[MemoryRecord]:
        def plan() -> Plan[list[MemoryRecord]]:
            rows = yield Step(text(
                f"SELECT {_SELECT} FROM sutram_memories m WHERE m.tenant_id = :t AND m.namespace = :ns "
                "AND m.key = :k ORDER BY m.version, m.pk"
            ), {"t": tenant, "ns": encode_namespace(namespace), "k": key})
            return [_record(r, tenant) for r in rows]

        return self.db.run(plan(), write=False)

    def tenants(self) -> list[str]:
        def plan() -> Plan[list[str]]:
            rows = yield Step(text("SELECT DISTINCT tenant_id FROM sutram_memories ORDER BY tenant_id"))
            return [r[0] for r in rows]

        return self.db.run(plan(), write=False)

    def list_namespaces(self, tenant: str, conditions: Sequence[NamespaceMatch], max_depth: int | None,
                        limit: int, offset: int, now: int) -> list[tuple[str, ...]]:
        fixed: tuple[str, ...] = ()
        for cond in conditions:
            if cond.kind == "prefix":
                for label in cond.path:
                    if label == "*":
                        break
                    fixed += (label,)
        w = where_clause(self.dialect, tenant, namespace_prefix=fixed, now=now)

        def plan() -> Plan[list[tuple[str, ...]]]:
            rows = yield Step(text(f"SELECT DISTINCT m.namespace FROM sutram_memories m WHERE {w.sql()}"), w.params)
            found = {decode_namespace(r[0]) for r in rows}
            kept = {ns[:max_depth] if max_depth else ns for ns in found if all(c.matches(ns) for c in conditions)}
            return sorted(kept)[offset: offset + limit]

        return self.db.run(plan(), write=False)

    # -- search ---------------------------------------------------------------------------

    def search(self, tenant: str, request: SearchRequest) -> list[SearchHit]:
        w = self._where(tenant, request)
        if not request.query and request.vector is None:
            return self.db.run(self._listing(tenant, w, request), write=False)
        need = request.offset + request.limit
        # keyword evidence re-ranks deeper than the page; the vector order alone needs only the page
        depth = need if request.mode == "vector" else max(_CANDIDATES, 2 * need)
        use_vector = request.vector is not None and request.mode in ("hybrid", "vector")
        terms = keyword_terms(request.query) if request.query and request.mode in ("hybrid", "keyword") else []
        rows_by_pk: dict[int, Any] = {}
        keyword_rows: dict[int, Any] = {}
        # PostgreSQL, hybrid: the two halves run at once, each on a connection of its own
        # (the server works on both while this thread waits). Each reads its own snapshot;
        # fusion only ranks what they found. SQLite runs them one after the other: both are
        # in-process, and the vector half's matrix product already keeps both cores busy.
        halves = self._halves() if self.pgvector is not None and use_vector and terms else None
        keyword = (halves.submit(self.db.run, self._keyword_plan(tenant, w, terms, depth, keyword_rows),
                                 write=False) if halves is not None else None)
        vector_hits: list[tuple[int, float]] = []
        keyword_hits: list[tuple[int, float]] = []
        try:
            if use_vector and self.dialect == "sqlite":
                vector_hits = self._vector_candidates(tenant, w, request, depth)
            elif use_vector and self.pgvector is not None:
                assert request.vector is not None
                self.pgvector.ensure(int(request.vector.shape[0]))
                vector_hits = self.db.run(self.pgvector.candidates_plan(
                    w, _SELECT, np.asarray(request.vector, dtype=np.float32), depth, rows_by_pk), write=False)
        except BaseException:
            if keyword is not None:
                wait([keyword])  # the vector half's error is the one raised; nothing left running
            raise
        if keyword is not None:
            keyword_hits = keyword.result()
        rows_by_pk.update(keyword_rows)

        def plan() -> Plan[list[SearchHit]]:
            found = keyword_hits
            if terms and keyword is None:
                found = yield from self._keyword_plan(tenant, w, terms, depth, rows_by_pk)
            return (yield from self._rank(tenant, w, request, vector_hits, found, rows_by_pk))

        return self.db.run(plan(), write=False)

    def _halves(self) -> ThreadPoolExecutor | None:
        """The threads that run a hybrid search's keyword half beside its vector half; None
        once closed (the halves then run one after the other)."""
        with self._lock:
            if self._closed:
                return None
            if self._halves_pool is None or self._halves_pid != os.getpid():
                # a forked child inherits the pool but not its threads: work queued there
                # would never run, so the child makes its own
                self._halves_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sutram-keyword")
                self._halves_pid = os.getpid()
            return self._halves_pool

    def _listing(self, tenant: str, w: Any, request: SearchRequest) -> Plan[list[SearchHit]]:
        order = "m.namespace, m.key" if request.order == "key" else "m.updated_at DESC, m.pk DESC"
        rows = yield Step(text(
            f"SELECT {_SELECT} FROM sutram_memories m WHERE {w.sql()} ORDER BY {order} LIMIT :lim OFFSET :off"
        ), {**w.params, "lim": request.limit, "off": request.offset})
        return [SearchHit(_record(r, tenant)) for r in rows]

    def count(self, tenant: str, request: SearchRequest) -> int:
        w = self._where(tenant, request)

        def plan() -> Plan[int]:
            rows = yield Step(text(f"SELECT count(*) FROM sutram_memories m WHERE {w.sql()}"), w.params)
            return int(rows[0][0])

        return self.db.run(plan(), write=False)

    def _where(self, tenant: str, request: SearchRequest) -> Any:
        return where_clause(
            self.dialect, tenant, namespace_prefix=request.namespace_prefix,
            exact_namespace=request.exact_namespace, exclude_system=request.exclude_system,
            conditions=request.conditions, kinds=request.kinds,
            created_after=request.created_after, created_before=request.created_before, as_of=request.as_of,
            now=request.now,
        )

    def _keyword_plan(self, tenant: str, w: Any, terms: list[str], depth: int,
                      rows_by_pk: dict[int, Any]) -> Plan[list[tuple[int, float]]]:
        """The ``depth`` best keyword matches that pass the filters, best first; their rows
        go into ``rows_by_pk`` (ranking needs their texts, the page their rows)."""
        if self.dialect == "sqlite":
            return (yield from self._fts5_plan(tenant, w, terms, depth, rows_by_pk))
        # BM25's term weighting without its length part: each matching term adds its IDF,
        # the document frequency counted among the rows that pass the filters and capped
        # at _DF_CAP (a term that common weighs nearly nothing). ts_rank has no IDF: a
        # rare name or identifier weighed no more than "user" (MRR 0.21 against 0.49).
        # One pass: the rows matching any term, with which terms each matches, give both
        # the frequencies and the scores (counting each term apart read its rows twice).
        # The match is a bound constant, so it uses the GIN index; each term's tsquery
        # is parsed once (q), and its weight computed once (df), not once per row.
        params: dict[str, Any] = {**w.params, "kq": " | ".join(terms), "n": depth}
        parsed, flags, weights, score = [], [], [], []
        for i, term in enumerate(terms):
            params[f"kt{i}"] = term
            parsed.append(f"to_tsquery('english', :kt{i}) AS q{i}")
            flags.append(f"m.tsv @@ q.q{i} AS h{i}")
            df = f"least(count(*) FILTER (WHERE h{i}), {_DF_CAP})"
            weights.append(f"ln(1 + (CAST({_DF_CAP} AS float8) - {df} + 0.5) / ({df} + 0.5)) AS w{i}")
            score.append(f"CASE WHEN h{i} THEN w{i} ELSE 0 END")
        # rounded: equal scores stay equal, so that ties go by pk, every time. The best
        # rows come back whole: ranking needs their texts, and the page their rows.
        rows = yield Step(text(
            f"WITH q AS MATERIALIZED (SELECT {', '.join(parsed)}), "
            f"hits AS MATERIALIZED (SELECT m.pk, {', '.join(flags)} FROM q CROSS JOIN sutram_memories m "
            f"WHERE m.tsv @@ to_tsquery('english', :kq) AND {w.sql()}), "
            f"df AS MATERIALIZED (SELECT {', '.join(weights)} FROM hits), "
            f"top AS (SELECT hits.pk, round(({' + '.join(score)}) * 1e9) / 1e9 AS s FROM hits CROSS JOIN df "
            "ORDER BY s DESC, hits.pk LIMIT :n) "
            f"SELECT {_SELECT}, top.s FROM top JOIN sutram_memories m ON m.pk = top.pk ORDER BY top.s DESC, m.pk"
        ), params)
        return _found(rows, rows_by_pk)

    def _fts5_plan(self, tenant: str, w: Any, terms: list[str], depth: int,
                   rows_by_pk: dict[int, Any]) -> Plan[list[tuple[int, float]]]:
        """The ``depth`` best full-text matches that pass the filters, best first.

        Ranking every match is cheap (the full-text index alone); looking each one up in
        the memories table to apply the filters is not (a random page read per match: 6 of
        the 10 ms at 100,000 memories). So the filters are first applied to the best
        ``pool`` matches only. That answer is exact when ``depth`` of them pass, or when the
        index had no more than ``pool`` matches; otherwise every match is filtered, as
        before. ``pool`` grows with the share of matches the filters dropped last time, and
        a share too small to be worth a first try (another tenant's rows, a narrow filter)
        sends the query straight to the full read.
        """
        q = fts5_query(terms)
        key = (tenant, w.sql())
        kept = self._fts_kept.get(key, 1.0)
        pool = math.ceil(1.5 * depth / max(kept, 1e-3)) + depth
        if pool <= _FTS_POOL_MAX:
            rows = yield Step(text(
                f"SELECT {_SELECT}, f.s FROM (SELECT rowid AS r, -bm25(sutram_memories_fts) AS s "
                "FROM sutram_memories_fts WHERE sutram_memories_fts MATCH :q "
                "ORDER BY bm25(sutram_memories_fts), rowid LIMIT :pool) f "
                f"CROSS JOIN sutram_memories m ON m.pk = f.r WHERE {w.sql_by_rowid()} "
                "ORDER BY f.s DESC, m.pk"
            ), {**w.params, "q": q, "pool": pool})
            if len(self._fts_kept) > 256:
                self._fts_kept.clear()
            # the share of the pool that passed (an upper bound when the index ran out)
            self._fts_kept[key] = 0.5 * kept + 0.5 * len(rows) / pool
            if len(rows) >= depth:
                return _found(rows[:depth], rows_by_pk)
            ranked_all = yield Step(text(
                "SELECT count(*) FROM (SELECT 1 FROM sutram_memories_fts WHERE sutram_memories_fts MATCH :q "
                "LIMIT :more)"), {"q": q, "more": pool + 1})
            if int(ranked_all[0][0]) <= pool:
                return _found(rows, rows_by_pk)
        # CROSS JOIN keeps the full-text match first: SQLite would otherwise walk the
        # tenant's rows and probe the index for each
        rows = yield Step(text(
            f"SELECT {_SELECT}, -bm25(sutram_memories_fts) AS s FROM sutram_memories_fts "
            "CROSS JOIN sutram_memories m ON m.pk = sutram_memories_fts.rowid "
            f"WHERE sutram_memories_fts MATCH :q AND {w.sql_by_rowid()} "
            "ORDER BY bm25(sutram_memories_fts), m.pk LIMIT :n"
        ), {**w.params, "q": q, "n": depth})
        return _found(rows, rows_by_pk)

    def _vector_candidates(self, tenant: str, w: Any, request: SearchRequest, depth: int) -> list[tuple[int, float]]:
        assert request.vector is not None
        q = np.asarray(request.vector, dtype=np.float32)
        with self._lock:
            index = self._indexes.get(tenant)
            if index is None:
                index = self._indexes[tenant] = VectorIndex(self.db, tenant)
                while len(self._indexes) > self.max_vector_indexes:
                    self._indexes.popitem(last=False)
            else:
                self._indexes.move_to_end(tenant)
        hits = index.search(q, w, request, depth)
        if not self._field_table_seen():
            return hits
        if request.as_of is not None:
            more = self.db.run(field_vectors.scan_plan(q, w, depth), write=False)
            best = dict(hits)
            for pk, score in more:
                best[pk] = max(best.get(pk, -np.inf), score)
            return sorted(best.items(), key=lambda h: (-h[1], h[0]))[:depth]
        # records with several vectors (one per index field): each record once, scored by its
        # best vector. Exact: a record among the best `depth` by its best vector is among the
        # best `depth` of the list that holds that vector.
        with self._lock:
            fields = self._field_indexes.get(tenant)
            if fields is None:
                fields = self._field_indexes[tenant] = FieldVectorIndex(self.db, tenant)
                while len(self._field_indexes) > self.max_vector_indexes:
                    self._field_indexes.popitem(last=False)
            else:
                self._field_indexes.move_to_end(tenant)
        best = dict(hits)
        for pk, score in fields.search(q, w, request, depth):
            if score > best.get(pk, -np.inf):
                best[pk] = score
        return sorted(best.items(), key=lambda h: (-h[1], h[0]))[:depth]

    def _rank(self, tenant: str, w: Any, request: SearchRequest, vector_hits: list[tuple[int, float]],
              keyword_hits: list[tuple[int, float]], rows_by_pk: dict[int, Any]) -> Plan[list[SearchHit]]:
        vscore = dict(vector_hits)
        kscore = dict(keyword_hits)
        by_pk = dict(rows_by_pk)
        if request.mode == "vector" or not keyword_hits:
            fused = [(str(pk), s) for pk, s in vector_hits]  # the cosine is the score
        else:
            # every candidate's text feeds the keyword evidence (ranking.fuse)
            pool = list(dict.fromkeys([pk for pk, _ in vector_hits] + [pk for pk, _ in keyword_hits]))
            texts = {str(pk): by_pk[pk][5] or "" for pk in pool if pk in by_pk}
            missing = [pk for pk in pool if pk not in by_pk]
            if missing:  # the text only: whole rows are read for the page alone
                among, pks = pk_in(self.dialect, missing)
                rows = yield Step(text(f"SELECT m.pk, m.text FROM sutram_memories m WHERE {w.sql_by_rowid()} "
                                       f"AND {among}"), {**w.params, "pks": pks})
                texts.update((str(r[0]), r[1] or "") for r in rows)
            fused = fuse(request.query or "", [(str(pk), s) for pk, s in vector_hits if str(pk) in texts],
                         [(str(pk), s) for pk, s in keyword_hits if str(pk) in texts], texts, request.weights,
                         "keyword" if request.mode == "keyword" or not vector_hits else "hybrid")
        if not fused:
            return []
        if not request.recency_half_life:
            # the order is final: read only the page (and a margin for rows the filters now drop)
            fused = fused[: 2 * (request.offset + request.limit) + 5]
        yield from self._read_rows(self.dialect, w, [int(p) for p, _ in fused if int(p) not in by_pk], by_pk)
        hits: list[tuple[float, int, SearchHit]] = []
        for at, (p, score) in enumerate(fused):
            row = by_pk.get(int(p))
            if row is None:
                continue
            if request.recency_half_life:
                score *= recency_factor((request.now - int(row[12])) / 1e6, request.recency_half_life)
            hit = SearchHit(_record(row, tenant), score, vscore.get(int(p)), kscore.get(int(p)))
            hits.append((-score, at, hit))  # equal scores keep the fused order
        hits.sort(key=lambda h: (h[0], h[1]))
        return [h for _, _, h in hits[request.offset: request.offset + request.limit]]

    @staticmethod
    def _read_rows(dialect: str, w: Any, pks: list[int], into: dict[int, Any]) -> Plan[None]:
        """Read the rows ``pks`` that still pass the filters into ``into`` (a record closed
        since the candidates were found is not returned)."""
        if pks:
            among, values = pk_in(dialect, pks)
            rows = yield Step(text(f"SELECT {_SELECT} FROM sutram_memories m WHERE {w.sql_by_rowid()} "
                                   f"AND {among}"), {**w.params, "pks": values})
            into.update((int(r[0]), r) for r in rows)


def _found(rows: Sequence[Any], rows_by_pk: dict[int, Any]) -> list[tuple[int, float]]:
    """``(pk, score)`` of keyword rows that end in their score; the rows go to ``rows_by_pk``."""
    rows_by_pk.update((int(r[0]), r[:-1]) for r in rows)
    return [(int(r[0]), float(r[-1])) for r in rows]


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def _new_id() -> str:
    import uuid

    return uuid.uuid4().hex

