"""A record's extra vectors: one per index field, as LangGraph embeds them.

LangGraph's stores embed each field of ``index`` (and each element of a ``path[*]``
field) on its own and score a document by its best field. Sutram keeps a record's first
vector where it always did (``embedding`` on SQLite, ``vec`` on PostgreSQL, so records
with one vector cost nothing more) and the others in ``sutram_memory_field_vectors``,
one row per vector. A vector search looks in both and returns each record once, with the
similarity of its best vector, so ranking downstream sees one ``(pk, similarity)`` per
record as before.

The table is created the first time a record has more than one vector (on PostgreSQL
with the pgvector columns, since it holds a ``vector``). On SQLite an in-process index
per tenant (:class:`FieldVectorIndex`) holds the extra vectors and keeps in step with
every process through the tenant's change number, as :mod:`.memory_index` does; on
PostgreSQL an HNSW index per dimension count serves them (:mod:`.memory_pgvector`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text

from sutram_core.backends.sql.database import Database, Plan, Step

__all__ = ["TABLE", "FieldVectorIndex", "create_plan", "delete_plan", "exists_plan", "scan_plan", "vector_rows",
           "write_plan"]

TABLE = "sutram_memory_field_vectors"
_WIDEST = 4096  # candidates checked against the filter before asking the database for all matches


def vector_rows(embedding: Any) -> np.ndarray | None:
    """A record's vectors as a (count x dims) float32 array (None without any)."""
    if embedding is None:
        return None
    arr = np.asarray(embedding, dtype=np.float32)
    return arr.reshape(1, -1) if arr.ndim == 1 else arr


def create_plan(dialect: str) -> Plan[None]:
    """Create the table (idempotent)."""
    if dialect == "sqlite":
        yield Step(text(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (memory_pk INTEGER NOT NULL, n INTEGER NOT NULL, "
            "embedding BLOB NOT NULL, PRIMARY KEY (memory_pk, n))"
        ))
    else:  # deleting a memory deletes its vectors; "vector" needs pgvector (memory_pgvector.py)
        yield Step(text(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (memory_pk BIGINT NOT NULL REFERENCES sutram_memories (pk) "
            "ON DELETE CASCADE, n INTEGER NOT NULL, vec vector NOT NULL, PRIMARY KEY (memory_pk, n))"
        ))


def exists_plan(dialect: str) -> Plan[bool]:
    """Whether the table exists."""
    if dialect == "sqlite":
        rows = yield Step(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n"), {"n": TABLE})
    else:
        # in the schema Sutram's tables are in (current_schema()), not anywhere on the search_path
        rows = yield Step(text("SELECT 1 WHERE to_regclass(quote_ident(current_schema()) || '.' || :n) IS NOT NULL"),
                          {"n": TABLE})
    return bool(rows)


def write_plan(dialect: str, tenant: str, replaced: Sequence[str], extras: Sequence[tuple[str, np.ndarray]],
               param: Any) -> Plan[None]:
    """Drop the extra vectors of the records ``replaced`` (ids whose row was rewritten) and
    store ``extras``: (record id, its vectors after the first). ``param`` turns a vector
    into the driver's parameter."""
    if replaced:
        yield Step(text(
            f"DELETE FROM {TABLE} WHERE memory_pk IN (SELECT pk FROM sutram_memories WHERE tenant_id = :t "
            "AND id IN :ids)"
        ).bindparams(bindparam("ids", expanding=True)), {"t": tenant, "ids": list(replaced)})
    rows = [{"t": tenant, "id": ident, "n": n, "v": param(vec)}
            for ident, vecs in extras for n, vec in enumerate(vecs, start=1)]
    if rows:
        value = ":v" if dialect == "sqlite" else "CAST(:v AS vector)"
        column = "embedding" if dialect == "sqlite" else "vec"
        yield Step(text(
            f"INSERT INTO {TABLE} (memory_pk, n, {column}) SELECT pk, :n, {value} FROM sutram_memories "
            "WHERE tenant_id = :t AND id = :id"
        ), rows)


def delete_plan(where_sql: str, params: dict[str, Any]) -> Plan[None]:
    """SQLite (no cascading foreign key): drop the vectors of the memories ``where_sql`` selects."""
    yield Step(text(f"DELETE FROM {TABLE} WHERE memory_pk IN (SELECT pk FROM sutram_memories WHERE {where_sql})"),
               params)


def scan_plan(query: np.ndarray, where: Any, depth: int) -> Plan[list[tuple[int, float]]]:
    """SQLite, "as of" searches (closed records, which the index does not hold): the
    ``depth`` best ``(pk, best extra vector's similarity)`` pairs, scored from the table."""
    rows = yield Step(text(
        f"SELECT v.memory_pk, v.embedding FROM {TABLE} v JOIN sutram_memories m ON m.pk = v.memory_pk "
        f"WHERE {where.sql()} AND length(v.embedding) = :nbytes"
    ), {**where.params, "nbytes": int(query.shape[0]) * 4})
    best: dict[int, float] = {}
    if rows:
        scores = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1) @ query
        for (pk, _), score in zip(rows, scores.tolist(), strict=True):
            best[int(pk)] = max(best.get(int(pk), -np.inf), float(score))
    return sorted(best.items(), key=lambda h: (-h[1], h[0]))[:depth]


class FieldVectorIndex:
    """SQLite: the extra vectors of one tenant's current records, in memory.

    Several rows may share a record (``pks`` repeats); a search scores every row and keeps
    each record's best. Rows of a record that changed are marked dead and the new ones
    appended; the arrays are rebuilt from the table when dead rows outnumber live ones or a
    hard delete happened (``sutram_memory_state.deletes`` moved).
    """

    def __init__(self, db: Database, tenant: str) -> None:
        self.db = db
        self.tenant = tenant
        self._lock = threading.Lock()
        self.dims = 0
        self.pks = np.empty(0, dtype=np.int64)
        self.mat = np.empty((0, 0), dtype=np.float32)
        self.alive = np.empty(0, dtype=bool)
        self.seq = -1
        self.deletes = -1

    def _sync_plan(self, dims: int) -> Plan[None]:
        state = yield Step(text("SELECT seq, deletes FROM sutram_memory_state WHERE tenant_id = :t"),
                           {"t": self.tenant})
        seq, deletes = (int(state[0][0]), int(state[0][1])) if state else (0, 0)
        dead = len(self.alive) - int(np.count_nonzero(self.alive))
        if deletes != self.deletes or dims != self.dims or dead > max(1024, len(self.alive) - dead):
            rows = yield Step(text(
                f"SELECT v.memory_pk, v.embedding FROM {TABLE} v JOIN sutram_memories m ON m.pk = v.memory_pk "
                "WHERE m.tenant_id = :t AND m.valid_to IS NULL AND length(v.embedding) = :nbytes"
            ), {"t": self.tenant, "nbytes": dims * 4})
            self.dims = dims
            self.pks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            self.mat = (np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dims)
                        if rows else np.empty((0, dims), dtype=np.float32)).copy()
            self.alive = np.ones(len(rows), dtype=bool)
        elif seq != self.seq:
            # every record written since: its old extra vectors go, its current ones come in
            rows = yield Step(text(
                f"SELECT m.pk, m.valid_to, v.embedding FROM sutram_memories m LEFT JOIN {TABLE} v "
                "ON v.memory_pk = m.pk AND length(v.embedding) = :nbytes WHERE m.tenant_id = :t AND m.seq > :s"
            ), {"t": self.tenant, "s": self.seq, "nbytes": dims * 4})
            touched = np.asarray(sorted({int(r[0]) for r in rows}), dtype=np.int64)
            if len(self.pks) and len(touched):
                self.alive &= ~np.isin(self.pks, touched)
            fresh = [(int(r[0]), r[2]) for r in rows if r[1] is None and r[2] is not None]
            if fresh:
                self.pks = np.concatenate([self.pks, np.asarray([p for p, _ in fresh], dtype=np.int64)])
                self.mat = np.concatenate([self.mat, np.frombuffer(b"".join(b for _, b in fresh),
                                                                   dtype=np.float32).reshape(-1, dims)])
                self.alive = np.concatenate([self.alive, np.ones(len(fresh), dtype=bool)])
        self.seq, self.deletes = seq, deletes

    def search(self, query: np.ndarray, where: Any, request: Any, depth: int) -> list[tuple[int, float]]:
        """The ``depth`` best ``(pk, similarity of the record's best extra vector)`` pairs among
        the records that pass ``where``."""
        from sutram_core.backends.sql.memory_index import VectorIndex

        with self._lock:
            self.db.run(self._sync_plan(int(query.shape[0])), write=False)
            pks, scores = self.pks, self.mat @ query
            scores[~self.alive] = -np.inf
        if not len(pks):
            return []
        records, inverse = np.unique(pks, return_inverse=True)
        best = np.full(len(records), -np.inf, dtype=np.float32)
        np.maximum.at(best, inverse, scores)
        order = np.argsort(-best, kind="stable")
        order = order[np.isfinite(best[order])]
        width = min(len(order), max(16 * depth, 256))
        while width > 0:
            top = order[:width]
            passed = set(self.db.run(VectorIndex._check_plan(where, records[top].tolist()), write=False))
            kept = [(int(records[i]), float(best[i])) for i in top if int(records[i]) in passed]
            if len(kept) >= depth or width >= len(order):
                return kept[:depth]
            if width >= _WIDEST:
                break
            width = min(len(order), width * 4)
        else:
            return []
        matching = set(self.db.run(VectorIndex._match_plan(where), write=False))
        return [(int(records[i]), float(best[i])) for i in order if int(records[i]) in matching][:depth]
