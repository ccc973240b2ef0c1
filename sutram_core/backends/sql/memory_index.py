"""Exact vector search for SQLite: one in-process matrix per tenant and dimension count.

SQLite keeps each vector as float32 bytes; scanning them from disk for every query would
cost tens of milliseconds at 100k memories. This index holds the current vectors of one
tenant in a NumPy matrix and scores a query with one matrix product (about 4 ms at
100k x 384 on two cores). It stays in step with writes from any process: each write
transaction raises the tenant's change number (``sutram_memory_state.seq``) and stamps
the rows it touched; a search first reads the rows stamped after the number it last saw.
A hard delete raises ``deletes`` and makes the next search reload the matrix.

Filters are applied by the database, never by the index: the best candidates by score are
checked with one ``pk IN (...)`` query that carries every condition, widening until enough
pass (exact, because candidates are checked in score order). A very selective filter
falls back to asking the database for every matching row and scoring only those.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from sqlalchemy import text

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.memory_sql import namespace_range, pk_in
from sutram_core.memory.records import SYSTEM_ROOT

__all__ = ["VectorIndex"]

_WIDEST = 4096  # candidates checked against the filter before asking the database for all matches
_SYSTEM_LOW, _SYSTEM_HIGH = namespace_range((SYSTEM_ROOT,))
# whether a row is one of Sutram's own memories, which a search without a namespace leaves
# out: the index keeps this flag, so such a search stays a plain (unfiltered) one
_IS_SYSTEM = "(namespace >= :sys_low AND namespace < :sys_high)"


class VectorIndex:
    """The current vectors of one tenant (see the module docstring)."""

    def __init__(self, db: Database, tenant: str) -> None:
        self.db = db
        self.tenant = tenant
        self._lock = threading.Lock()
        self.dims = 0
        self.pks = np.empty(0, dtype=np.int64)
        self.mat = np.empty((0, 0), dtype=np.float32)
        self.alive = np.empty(0, dtype=bool)
        self.system = np.empty(0, dtype=bool)
        self.seq = -1
        self.deletes = -1

    # -- keeping in step -------------------------------------------------------------------

    def _sync_plan(self, dims: int) -> Plan[None]:
        state = yield Step(text("SELECT seq, deletes FROM sutram_memory_state WHERE tenant_id = :t"),
                           {"t": self.tenant})
        seq, deletes = (int(state[0][0]), int(state[0][1])) if state else (0, 0)
        if deletes != self.deletes or dims != self.dims:
            rows = yield Step(text(
                f"SELECT pk, embedding, {_IS_SYSTEM} FROM sutram_memories WHERE tenant_id = :t AND valid_to IS NULL "
                "AND embedding IS NOT NULL AND length(embedding) = :nbytes ORDER BY pk"
            ), {"t": self.tenant, "nbytes": dims * 4, "sys_low": _SYSTEM_LOW, "sys_high": _SYSTEM_HIGH})
            self.dims = dims
            self.pks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            self.mat = (np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dims)
                        if rows else np.empty((0, dims), dtype=np.float32)).copy()
            self.alive = np.ones(len(rows), dtype=bool)
            self.system = np.fromiter((bool(r[2]) for r in rows), dtype=bool, count=len(rows))
        elif seq != self.seq:
            rows = yield Step(text(
                f"SELECT pk, embedding, valid_to, {_IS_SYSTEM} FROM sutram_memories WHERE tenant_id = :t "
                "AND seq > :s ORDER BY pk"
            ), {"t": self.tenant, "s": self.seq, "sys_low": _SYSTEM_LOW, "sys_high": _SYSTEM_HIGH})
            self._merge(rows, dims)
        self.seq, self.deletes = seq, deletes

    def _merge(self, rows: list[Any], dims: int) -> None:
        new_pks: list[int] = []
        new_vecs: list[bytes] = []
        new_system: list[bool] = []
        nbytes = dims * 4
        for pk, blob, valid_to, system in rows:
            usable = valid_to is None and blob is not None and len(blob) == nbytes
            at = int(np.searchsorted(self.pks, pk))
            if at < len(self.pks) and self.pks[at] == pk:
                self.alive[at] = usable
                if usable:
                    self.mat[at] = np.frombuffer(blob, dtype=np.float32)
            elif usable:
                new_pks.append(pk)
                new_vecs.append(blob)
                new_system.append(bool(system))
        if not new_pks:
            return
        pks = np.concatenate([self.pks, np.asarray(new_pks, dtype=np.int64)])
        mat = np.concatenate([self.mat, np.frombuffer(b"".join(new_vecs), dtype=np.float32).reshape(-1, dims)])
        alive = np.concatenate([self.alive, np.ones(len(new_pks), dtype=bool)])
        system = np.concatenate([self.system, np.asarray(new_system, dtype=bool)])
        if len(self.pks) and new_pks[0] < self.pks[-1]:  # an old row gained a vector: keep pk order
            order = np.argsort(pks, kind="stable")
            pks, mat, alive, system = pks[order], mat[order], alive[order], system[order]
        self.pks, self.mat, self.alive, self.system = pks, mat, alive, system

    # -- searching -------------------------------------------------------------------------

    def search(self, query: np.ndarray, where: Any, request: Any, depth: int) -> list[tuple[int, float]]:
        """The ``depth`` best ``(pk, cosine)`` pairs among the rows that pass ``where``.

        A request without filters (tenant, current and unexpired only, which the index
        already tracks) skips the filter check; the caller's final fetch applies ``where``.
        """
        dims = int(query.shape[0])
        if request.as_of is not None:
            return self.db.run(self._scan_plan(query, where, depth), write=False)
        with self._lock:
            self.db.run(self._sync_plan(dims), write=False)
            pks, scores = self.pks, self.mat @ query
            scores[~self.alive] = -np.inf
            if request.exclude_system:
                scores[self.system] = -np.inf
        alive = int(np.count_nonzero(np.isfinite(scores)))
        plain = not (request.conditions or request.kinds or request.namespace_prefix
                     or request.created_after is not None or request.created_before is not None)
        width = min(alive, depth if plain else max(16 * depth, 256))
        while width > 0:
            top = np.argpartition(-scores, width - 1)[:width] if width < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            top = top[np.isfinite(scores[top])]
            if plain:
                return [(int(pks[i]), float(scores[i])) for i in top[:depth]]
            passed = set(self.db.run(self._check_plan(where, pks[top].tolist()), write=False))
            kept = [(int(pks[i]), float(scores[i])) for i in top if int(pks[i]) in passed]
            if len(kept) >= depth or width >= alive:
                return kept[:depth]
            if width >= _WIDEST:
                break
            # widen to what the share that passed so far says is enough, with a margin
            share = max(len(kept) / width, 1 / 64)
            width = min(alive, max(width * 2, int(depth / share * 1.5)))
        else:
            return []
        matching = self.db.run(self._match_plan(where), write=False)
        if not matching:
            return []
        at = np.nonzero(np.isin(pks, np.asarray(matching, dtype=np.int64)))[0]
        sub = scores[at]
        order = np.argsort(-sub, kind="stable")[:depth]
        return [(int(pks[at[i]]), float(sub[i])) for i in order if np.isfinite(sub[i])]

    @staticmethod
    def _check_plan(where: Any, pks: list[int]) -> Plan[list[int]]:
        if not pks:
            return []
        among, values = pk_in("sqlite", pks)  # one parameter, not one per candidate
        rows = yield Step(text(f"SELECT m.pk FROM sutram_memories m WHERE {where.sql_by_rowid()} AND {among}"),
                          {**where.params, "pks": values})
        return [int(r[0]) for r in rows]

    @staticmethod
    def _match_plan(where: Any) -> Plan[list[int]]:
        rows = yield Step(text(f"SELECT m.pk FROM sutram_memories m WHERE {where.sql()}"), where.params)
        return [int(r[0]) for r in rows]

    @staticmethod
    def _scan_plan(query: np.ndarray, where: Any, depth: int) -> Plan[list[tuple[int, float]]]:
        # "as of" reads closed rows, which the index does not hold: score them from the table
        nbytes = int(query.shape[0]) * 4
        rows = yield Step(text(
            f"SELECT m.pk, m.embedding FROM sutram_memories m WHERE {where.sql()} "
            "AND m.embedding IS NOT NULL AND length(m.embedding) = :nbytes"
        ), {**where.params, "nbytes": nbytes})
        if not rows:
            return []
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        scores = mat @ query
        order = np.argsort(-scores, kind="stable")[:depth]
        return [(int(rows[i][0]), float(scores[i])) for i in order]
