"""Vector search for PostgreSQL: pgvector HNSW, with indexing taken off the write path.

Inserting a row into an HNSW index costs about 1.5 ms of server CPU here (m=16,
ef_construction=64), several times what the rest of a memory write costs. So a write
stores the vector with ``vec_pending = true``, which keeps it out of the HNSW index (a
partial index over ``NOT vec_pending``), and returns. An indexer thread then marks pending
rows as indexed in batches (``FOR UPDATE SKIP LOCKED``, so the indexers of several
processes share the work), which inserts them into the HNSW index.

Searches stay exact about recent writes: they combine the HNSW candidates with an exact
scan of the tenant's pending rows (a partial index finds them). Writes arriving faster
than the index can take them grow that tail; :meth:`PgVectorIndex.index_pending` drains
it on demand, and ``deferred=False`` indexes inside each write instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import text

from sutram_core.backends.sql import memory_field_vectors as field_vectors
from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.memory_sql import PgVector
from sutram_core.errors import ConfigurationError, DatabaseUnavailableError, StorageError

__all__ = ["PgVectorIndex"]

log = logging.getLogger("sutram.memory")
_LOCK_KEY = 1400139636  # advisory lock around the vector DDL
_BATCH = 256
_ANALYZE_AFTER = 1000  # rows indexed in one drain that make the statistics worth refreshing


class PgVectorIndex:
    """The pgvector side of the memory table (see the module docstring)."""

    def __init__(self, db: Database, *, m: int = 16, ef_construction: int = 64, ef_search: int = 500,
                 deferred: bool = True, background: bool = True) -> None:
        self.db = db
        # m and ef_construction apply when a dimension's index is first created (lower values
        # insert faster and lose recall, bench/memory.py); ef_search is each query's candidate list
        self.m, self.ef_construction, self.ef_search = int(m), int(ef_construction), int(ef_search)
        self.deferred = deferred
        self.background = background  # False: pending rows wait for index_pending() (or another process)
        self._dims: set[int] = set()
        self.has_column: bool | None = None
        self.has_fields = False  # whether the table of extra vectors exists (checked until it does)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._since_analyze = 0

    # -- schema ---------------------------------------------------------------------------

    def configure_session(self, dbapi_conn: Any, _record: Any) -> None:
        """Per connection, once: HNSW scans continue past ef_search until enough rows pass the
        filters (iterative scans; results are re-sorted), and plans stay custom (a generic plan
        ignores the parameters that make the vector index the right choice)."""
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', false), "
                            f"set_config('hnsw.ef_search', '{self.ef_search}', false), "
                            "set_config('plan_cache_mode', 'force_custom_plan', false)")
        finally:
            dbapi_conn.autocommit = autocommit

    def ensure(self, dims: int) -> None:
        """Create the extension, the vector columns and this dimension's HNSW index (once)."""
        if dims in self._dims:
            return
        try:
            self.db.run(self._ensure_plan(int(dims)))
        except StorageError as exc:
            raise ConfigurationError(
                "memory vectors on PostgreSQL need the pgvector extension: install it on the server and run "
                f"CREATE EXTENSION vector as a superuser once (the database said: {exc})"
            ) from exc
        self._dims.add(dims)
        self.has_column = True
        self.has_fields = True

    def _ensure_plan(self, dims: int) -> Plan[None]:
        yield Step(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"))
        yield Step(text("CREATE EXTENSION IF NOT EXISTS vector"))
        visible = yield Step(text("SELECT to_regtype('vector') IS NOT NULL"))
        if not visible[0][0]:
            where = yield Step(text(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'vector'"
            ))
            raise ConfigurationError(
                f"pgvector is installed in schema {where[0][0]!r}, which is not on this connection's "
                "search_path; add it (for example ?options=-csearch_path%3Dmyschema,public)"
            )
        yield Step(text("ALTER TABLE sutram_memories ADD COLUMN IF NOT EXISTS vec vector"))
        yield Step(text(
            "ALTER TABLE sutram_memories ADD COLUMN IF NOT EXISTS vec_pending boolean NOT NULL DEFAULT false"
        ))
        yield Step(text(
            "CREATE INDEX IF NOT EXISTS ix_sutram_memories_vec_pending ON sutram_memories (tenant_id, pk) "
            "WHERE vec_pending"
        ))
        yield Step(text(
            f"CREATE INDEX IF NOT EXISTS ix_sutram_memories_hnsw_{dims} ON sutram_memories "
            f"USING hnsw ((vec::vector({dims})) vector_cosine_ops) WITH (m = {self.m}, "
            f"ef_construction = {self.ef_construction}) WHERE vector_dims(vec) = {dims} AND NOT vec_pending"
        ))
        # a record's vectors after the first (one per index field, memory_field_vectors.py),
        # indexed as they are written: only records with several index fields have them
        yield from field_vectors.create_plan("postgresql")
        yield Step(text(
            f"CREATE INDEX IF NOT EXISTS ix_sutram_field_vectors_hnsw_{dims} ON {field_vectors.TABLE} "
            f"USING hnsw ((vec::vector({dims})) vector_cosine_ops) WITH (m = {self.m}, "
            f"ef_construction = {self.ef_construction}) WHERE vector_dims(vec) = {dims}"
        ))

    def column_exists(self) -> bool:
        """Whether the vector columns exist (a store without vectors never creates them)."""
        if self.has_column is None:
            self.has_column = bool(self.db.run(self._column_plan(), write=False))
        return self.has_column

    @staticmethod
    def _column_plan() -> Plan[bool]:
        rows = yield Step(text(
            "SELECT 1 FROM pg_attribute WHERE attrelid = 'sutram_memories'::regclass AND attname = 'vec_pending'"
        ))
        return bool(rows)

    # -- search ---------------------------------------------------------------------------

    def candidates_plan(self, where: Any, select: str, query: np.ndarray, depth: int,
                        rows_by_pk: dict[int, Any]) -> Plan[list[tuple[int, float]]]:
        """The ``depth`` nearest records that pass ``where``, each once with the similarity of
        its nearest vector: HNSW over indexed rows (and over the extra vectors of records with
        several, memory_field_vectors.py), exact over pending ones. The rows are kept in
        ``rows_by_pk`` so ranking needs no second read.

        An HNSW half that returns fewer than ``depth`` rows may have missed some: HNSW is
        approximate, and a graph built by inserts of near-identical vectors can leave an
        element that no search reaches (seen with 120 similar notes: one stayed unfound
        for seconds). Such a half is run again exactly, so a record that passes the filters
        is never left out while the page still has room for it.
        """
        dims = int(query.shape[0])
        if not self.has_fields:
            self.has_fields = yield from field_vectors.exists_plan("postgresql")
        q = f"CAST(:q AS vector({dims}))"
        arms = {  # name: (FROM ... WHERE ..., distance)
            "indexed": (f"sutram_memories m WHERE vector_dims(m.vec) = {dims} AND NOT m.vec_pending "
                        f"AND {where.sql()}", f"m.vec::vector({dims}) <=> {q}"),
            "pending": (f"sutram_memories m WHERE m.vec_pending AND vector_dims(m.vec) = {dims} AND {where.sql()}",
                        f"m.vec::vector({dims}) <=> {q}"),
        }
        if self.has_fields:
            arms["fields"] = (f"{field_vectors.TABLE} v JOIN sutram_memories m ON m.pk = v.memory_pk "
                              f"WHERE vector_dims(v.vec) = {dims} AND {where.sql()}", f"v.vec::vector({dims}) <=> {q}")
        params = {**where.params, "q": PgVector(query), "n": depth}

        def statement(exact: Sequence[str]) -> Any:
            # exact: OFFSET 0 keeps the ORDER BY out of the HNSW index scan
            return text(" UNION ALL ".join(
                f"(SELECT * FROM (SELECT {select}, {dist} AS d, '{name}' AS arm FROM {source} OFFSET 0) exact "
                "ORDER BY d LIMIT :n)" if name in exact else
                f"(SELECT {select}, {dist} AS d, '{name}' AS arm FROM {source} ORDER BY d LIMIT :n)"
                for name, (source, dist) in arms.items()))

        rows = yield Step(statement(()), params)
        short = [name for name in ("indexed", "fields") if name in arms and sum(r[-1] == name for r in rows) < depth]
        if short == ["fields"] and not (yield Step(text(f"SELECT EXISTS (SELECT 1 FROM {field_vectors.TABLE})")))[0][0]:
            short = []  # no record has a second vector: nothing the index could have missed
        if short:
            # every half again, in one statement: halves read in two snapshots could each miss
            # a row that moved between them (written again, so pending again)
            rows = yield Step(statement(short), params)
        # one candidate per record, with the similarity of its nearest vector
        best: dict[int, float] = {}
        for r in rows:
            pk, similarity = int(r[0]), 1.0 - float(r[-2])
            rows_by_pk[pk] = r[:-2]
            if similarity > best.get(pk, -np.inf):
                best[pk] = similarity
        ranked = sorted(best.items(), key=lambda p: -p[1])
        return ranked[:depth]

    # -- deferred indexing ----------------------------------------------------------------

    def written(self) -> None:
        """A write stored pending vectors: wake (or start) the indexer thread."""
        if not self.deferred or not self.background:
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="sutram-vector-indexer", daemon=True)
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                drained = 0
                while not self._stop.is_set() and (n := self.index_batch()) > 0:
                    drained += n
                self._after_drain(drained)
            except DatabaseUnavailableError as exc:  # the server is away: keep trying
                log.warning("sutram: vector indexing failed, will retry: %s", exc)
                self._stop.wait(1.0)
            except Exception as exc:  # the table is gone or refuses the write: stop until the next write
                log.warning("sutram: vector indexing stopped until the next write: %s", exc)
                return

    def index_batch(self, size: int = _BATCH) -> int:
        """Index up to ``size`` pending rows (any tenant) in one transaction; return how many."""
        def plan() -> Plan[int]:
            n = yield Step(text(
                "UPDATE sutram_memories SET vec_pending = false WHERE pk IN (SELECT pk FROM sutram_memories "
                "WHERE vec_pending ORDER BY pk LIMIT :n FOR UPDATE SKIP LOCKED)"
            ), {"n": size})
            return int(n)

        if not self.column_exists():
            return 0
        return self.db.run(plan())

    def index_pending(self) -> int:
        """Index every pending row now (for example after a bulk load); return how many."""
        total = 0
        while (n := self.index_batch()) > 0:
            total += n
        self._after_drain(total)
        return total

    def _after_drain(self, rows: int) -> None:
        # After a burst the planner's statistics still describe the table before it ("a handful
        # of rows"), and it would scan and sort a tenant's rows instead of using the HNSW and
        # pending indexes. Refresh them once enough rows moved (autovacuum would, later).
        with self._lock:
            self._since_analyze += rows
            due = self._since_analyze >= _ANALYZE_AFTER
            if due:
                self._since_analyze = 0
        if due:
            def plan() -> Plan[None]:
                yield Step(text("ANALYZE sutram_memories"))

            self.db.run(plan())

    def pending(self) -> int:
        """How many rows wait for the vector index (every tenant)."""
        def plan() -> Plan[int]:
            rows = yield Step(text("SELECT count(*) FROM sutram_memories WHERE vec_pending"))
            return int(rows[0][0])

        return self.db.run(plan(), write=False) if self.column_exists() else 0

    def stop(self) -> None:
        """Stop the indexer thread (pending rows stay pending; any process indexes them later)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
