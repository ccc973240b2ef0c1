"""The SQL implementation of the checkpoint store (SQLite and PostgreSQL).

Every operation is a plan (see ``database.py``): it yields statements and gets rows back,
inside one transaction. The async twins run the same code on the database's thread pool.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    String,
    Table,
    bindparam,
    column,
    delete,
    exists,
    func,
    literal,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ColumnElement

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.schema import (
    checkpoint_blobs,
    checkpoint_writes,
    checkpoints,
    thread_tombstones,
)
from sutram_core.checkpoints.list_delta import (
    BlobRow,
    ListDeltaEncoder,
    assemble_value,
)
from sutram_core.checkpoints.records import (
    EMPTY,
    CheckpointRecord,
    DeltaHistory,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)
from sutram_core.checkpoints.value_cache import BoundedLRU, ValueCache, cacheable_version
from sutram_core.errors import InvalidCheckpointError

__all__ = ["PARTS", "SqlCheckpointStore"]

T = TypeVar("T")
PARTS = frozenset({"checkpoints"})  # the part of the schema the store uses: a saver makes no other

_CHUNK = 400  # bound on the number of bind parameters of one IN (...) list
_CARRIED_ROWS = 4096  # checkpoint rows whose carried values are remembered (see _carried_seeds)
_PAGE = 100  # checkpoints fetched per page by list()

_cp = checkpoints.c
_bl = checkpoint_blobs.c
_wr = checkpoint_writes.c
_ts = thread_tombstones.c

# a checkpoint's channel_versions entry j (key: channel, value: version) to its blob row b
_BLOB_OF_ENTRY = ("b.tenant_id = :tenant AND b.thread_id = :thread AND b.checkpoint_ns = :ns "
                  "AND b.channel = j.key AND b.version = j.value")
_CP_COLS = (
    _cp.thread_id,
    _cp.checkpoint_ns,
    _cp.checkpoint_id,
    _cp.parent_checkpoint_id,
    _cp.type,
    _cp.checkpoint,
    _cp.channel_versions,
    _cp.metadata,
)
_BLOB_COLS = (
    _bl.channel,
    _bl.version,
    _bl.kind,
    _bl.type,
    _bl.data,
    _bl.base_version,
    _bl.prev_version,
    _bl["items"],
)


# (type, data) of a checkpoint row -> the values it carries itself, by channel (see delta_history)
RowValues = Callable[[str, bytes], Mapping[str, tuple[str, bytes]]]


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _stored(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(
        thread_id=row[0],
        checkpoint_ns=row[1],
        checkpoint_id=row[2],
        parent_id=row[3],
        type=row[4],
        data=bytes(row[5]),
        channel_versions=json.loads(row[6]),
        metadata_json=row[7],
    )


def _blob_row(r: Sequence[Any]) -> BlobRow:
    """A row of ``_BLOB_COLS``."""
    return BlobRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6], r[7])


def _write_record(r: Sequence[Any]) -> WriteRecord:
    """A row of checkpoint_id, task_id, idx, channel, type, data, task_path (the id unused)."""
    return WriteRecord(r[1], r[2], r[3], r[4], bytes(r[5]), r[6])


def _write_order(w: WriteRecord) -> tuple[str, str, int]:
    # LangGraph's writes_sort_key: (task_path, task_id, idx), compared in Python so that
    # the database's collation cannot change the order
    return (w.task_path, w.task_id, w.idx)


def _matches(metadata_json: str, wanted: dict[str, Any] | None) -> bool:
    if not wanted:
        return True
    md = json.loads(metadata_json)
    return all(md.get(k) == v for k, v in wanted.items())


# JSON without spaces, as json.dumps(..., separators=(",", ":")) writes it (an encoder made once)
_compact_json = json.JSONEncoder(separators=(",", ":")).encode

# the statements SqlCheckpointStore compiles, per (dialect, driver, paramstyle)
_BUILT: dict[tuple[str, str, str], dict[str, Any]] = {}


class SqlCheckpointStore:
    """Checkpoints, channel values and pending writes in a SQL database.

    Each channel value is stored once per version; list values that only grow are
    stored as appended tails (see ``sutram_core.checkpoints.list_delta``).

    >>> store = SqlCheckpointStore(Database("sqlite:///.sutram/sutram.db"))  # doctest: +SKIP
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert = postgresql.insert if db.backend == "postgresql" else sqlite.insert
        self._deltas = ListDeltaEncoder()
        self._recent = ValueCache()
        # the values checkpoint rows carry themselves, as read for delta histories: a thread
        # whose delta channel has no stored value yet has its older rows read on every load
        self._carried: BoundedLRU[tuple[str, str, str, str], Mapping[str, tuple[str, bytes]]] = \
            BoundedLRU(_CARRIED_ROWS)
        # compiled once per dialect and process: a second saver on a database costs no
        # compiling (it was most of what opening one cost)
        dialect = db.engine.dialect
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        built = _BUILT.get(key)
        if built is None:
            before = set(vars(self))
            self._build_statements()
            built = _BUILT.setdefault(key, {k: v for k, v in vars(self).items() if k not in before})
        else:
            vars(self).update(built)

    def setup(self) -> None:
        """Make the checkpoint tables if missing (and upgrade the schema); idempotent."""
        self.db.setup(PARTS)

    def _run(self, plan: Plan[T], *, write: bool = True, single: bool = False) -> T:
        return self.db.run(plan, write=write, single=single, parts=PARTS)

    def _build_statements(self) -> None:
        # The hot-path statements are built once and compiled once for the dialect
        # (Database.prepare); building an upsert costs more than executing it on SQLite.
        P = bindparam
        prep = self.db.prepare
        # Writes carry their own tombstone check (INSERT ... SELECT ... WHERE NOT EXISTS),
        # which saves a statement, and on PostgreSQL a round trip, per call.
        ins = self._guarded_insert(checkpoint_blobs)
        self._q_put_blobs = prep(ins.on_conflict_do_update(
            index_elements=[_bl.tenant_id, _bl.thread_id, _bl.checkpoint_ns, _bl.channel, _bl.version],
            set_={c: ins.excluded[c] for c in ("kind", "type", "data", "base_version", "prev_version", "items")},
        ))
        ins = self._guarded_insert(checkpoints)
        self._q_put_checkpoint = prep(ins.on_conflict_do_update(
            index_elements=[_cp.tenant_id, _cp.thread_id, _cp.checkpoint_ns, _cp.checkpoint_id],
            set_={
                c: ins.excluded[c]
                for c in ("parent_checkpoint_id", "run_id", "type", "checkpoint", "channel_versions", "metadata")
            },
        ))
        pk = [_wr.tenant_id, _wr.thread_id, _wr.checkpoint_ns, _wr.checkpoint_id, _wr.task_id, _wr.idx]
        ins = self._guarded_insert(checkpoint_writes)
        self._q_put_writes_keep = prep(ins.on_conflict_do_nothing(index_elements=pk))
        ins = self._guarded_insert(checkpoint_writes)
        self._q_put_writes_replace = prep(ins.on_conflict_do_update(
            index_elements=pk, set_={c: ins.excluded[c] for c in ("channel", "type", "data", "task_path")}
        ))
        if self.db.backend == "postgresql":
            self._build_pg_statements()
        cp_scope = (_cp.tenant_id == P("tenant"), _cp.thread_id == P("thread"), _cp.checkpoint_ns == P("ns"))
        self._q_get_latest = prep(
            select(*_CP_COLS).where(*cp_scope).order_by(_cp.checkpoint_id.desc()).limit(1)
        )
        # get_tuple: the checkpoint and the stored value of each of its channel versions in one
        # statement (one row per channel; a lookup per channel cost a statement each)
        if self.db.backend == "sqlite":  # PostgreSQL reads the writes in the same statement
            self._q_get_one_values = prep(self._with_values("checkpoint_id = :cid"))
            self._q_get_latest_values = prep(self._with_values("true ORDER BY checkpoint_id DESC LIMIT 1"))
        bl_scope = (_bl.tenant_id == P("tenant"), _bl.thread_id == P("thread"), _bl.checkpoint_ns == P("ns"))
        self._q_chains = union_all(  # several chains at once (a page of checkpoints)
            # "IS NOT NULL" lets SQLite use the partial chain index for a row-value IN
            select(*_BLOB_COLS).where(*bl_scope, _bl.base_version.isnot(None),
                                      tuple_(_bl.channel, _bl.base_version).in_(P("bases", expanding=True))),
            select(*_BLOB_COLS).where(*bl_scope, tuple_(_bl.channel, _bl.version).in_(P("base_keys", expanding=True))),
        )
        self._q_blob_one = prep(select(*_BLOB_COLS).where(
            *bl_scope, _bl.channel == P("ch"), _bl.version == P("v")
        ))
        # the chain's deltas by the chain index, plus its full row by primary key (an OR of
        # the two would keep PostgreSQL from using either index fully)
        self._q_chain_one = prep(union_all(
            select(*_BLOB_COLS).where(*bl_scope, _bl.channel == P("ch"), _bl.base_version == P("base")),
            select(*_BLOB_COLS).where(*bl_scope, _bl.channel == P("ch"), _bl.version == P("base")),
        ))
        if self.db.backend == "postgresql":
            # arrays instead of an IN list keep the statement prepared; the cross product of
            # channels and versions is filtered to the wanted pairs after fetching
            self._q_blobs_any = prep(select(*_BLOB_COLS).where(
                *bl_scope,
                _bl.channel == func.any(P("chs", type_=ARRAY(String))),
                _bl.version == func.any(P("vs", type_=ARRAY(String))),
            ))
        self._q_writes_one = prep(select(
            _wr.checkpoint_id, _wr.task_id, _wr.idx, _wr.channel, _wr.type, _wr.data, _wr.task_path
        ).where(
            _wr.tenant_id == P("tenant"), _wr.thread_id == P("thread"), _wr.checkpoint_ns == P("ns"),
            _wr.checkpoint_id == P("cid"),
        ))
        # SQLite answers a primary-key lookup per channel faster than SQLAlchemy expands
        # an IN list; PostgreSQL pays a round trip per statement, so it gets _q_blobs_any.
        self._lookup_keys_one_by_one = self.db.backend == "sqlite"
        self._q_writes = select(
            _wr.checkpoint_id, _wr.task_id, _wr.idx, _wr.channel, _wr.type, _wr.data, _wr.task_path
        ).where(
            _wr.tenant_id == P("tenant"), _wr.thread_id == P("thread"), _wr.checkpoint_ns == P("ns"),
            _wr.checkpoint_id.in_(P("ids", expanding=True)),
        )

    def _build_pg_statements(self) -> None:
        """PostgreSQL: put and put_writes as one statement each, run without BEGIN and COMMIT
        (``Database.run(single=True)``): one round trip where a transaction took three or four
        (a 10-step graph wrote 23 transactions). The rows come as arrays, unnested; the
        tombstone guard is checked once for them all. And get as one statement (see
        :meth:`_with_values_and_writes`)."""
        guard = (f"SELECT NOT EXISTS (SELECT 1 FROM {thread_tombstones.name} WHERE tenant_id = :tenant_id "
                 "AND thread_id = :thread_id AND mark >= :guard_cid) AS ok")
        blob_set = ", ".join(f"{c} = excluded.{c}" for c in ("kind", "type", "data", "base_version", "prev_version",
                                                              "items"))
        cp_cols = ("tenant_id", "thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "run_id",
                   "type", "checkpoint", "channel_versions", "metadata")
        cp_set = ", ".join(f"{c} = excluded.{c}" for c in cp_cols[4:])
        cp_values = ", ".join(f":{c}" for c in cp_cols)
        # The rows come packed in two parameters (see _packed): psycopg took longer to send
        # them as eight typed arrays than the server took to run the statement.
        blobs = (
            f"INSERT INTO {checkpoint_blobs.name} (tenant_id, thread_id, checkpoint_ns, channel, version, kind, type, "
            "data, base_version, prev_version, items) "
            "SELECT :tenant_id, :thread_id, :checkpoint_ns, r.m->>0, r.m->>1, r.m->>2, r.m->>3, "
            f"{_packed_data(7)}, r.m->>4, r.m->>5, CAST(r.m->>6 AS integer) FROM g, {_PACKED_ROWS} WHERE g.ok "
            f"ON CONFLICT (tenant_id, thread_id, checkpoint_ns, channel, version) DO UPDATE SET {blob_set}"
        )
        checkpoint = (
            f"INSERT INTO {checkpoints.name} ({', '.join(cp_cols)}) SELECT {cp_values} FROM g WHERE g.ok "
            f"ON CONFLICT (tenant_id, thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET {cp_set}"
        )
        # the row count is the checkpoint's: 1 stored, 0 when the thread was deleted
        self._q_put_one = _binary_data(self.db.prepare(text(f"WITH g AS ({guard}), b AS ({blobs}) {checkpoint}")))
        self._q_put_one_bare = _binary_data(self.db.prepare(text(f"WITH g AS ({guard}) {checkpoint}")))
        self._q_get_one_all = self.db.prepare(self._with_values_and_writes("checkpoint_id = :cid"))
        self._q_get_latest_all = self.db.prepare(
            self._with_values_and_writes("true ORDER BY checkpoint_id DESC LIMIT 1"))
        self._q_put_writes_one = _binary_data(self.db.prepare(text(
            f"WITH g AS ({guard}) INSERT INTO {checkpoint_writes.name} (tenant_id, thread_id, checkpoint_ns, "
            "checkpoint_id, task_id, idx, channel, type, data, task_path) "
            "SELECT :tenant_id, :thread_id, :checkpoint_ns, :checkpoint_id, r.m->>0, CAST(r.m->>1 AS integer), "
            f"r.m->>2, r.m->>3, {_packed_data(5)}, r.m->>4 FROM g, {_PACKED_ROWS} WHERE g.ok "
            "ON CONFLICT (tenant_id, thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING"
        )))

    def _with_values_and_writes(self, which: str) -> Any:
        """PostgreSQL: what SQLite's :meth:`_with_values` reads and the checkpoint's pending
        writes, in one statement (one round trip, where a read took two). Each row starts
        with its part: 0 for a checkpoint-and-value row (the columns of ``_with_values``, then
        NULLs), 1 for a write (NULLs, then the columns of ``_q_writes_one``)."""
        cp_cols = ", ".join(f"c.{c.name}" for c in _CP_COLS)
        blob_cols = ", ".join(f"b.{c.name}" for c in _BLOB_COLS)
        write_cols = ("checkpoint_id", "task_id", "idx", "channel", "type", "data", "task_path")
        nulls_before = ", ".join(["NULL"] * (len(_CP_COLS) + len(_BLOB_COLS)))
        nulls_after = ", ".join(["NULL"] * len(write_cols))
        # Only the checkpoint's own lookup names the parameters; the values and the writes are
        # keyed by its row. A prepared statement's generic plan then costs what a custom one
        # does, and PostgreSQL keeps it: planned anew per call (its choice when the statistics
        # of freshly written tables made custom plans look cheaper), a read cost twice as much.
        return text(
            f"WITH c AS MATERIALIZED (SELECT tenant_id, {', '.join(c.name for c in _CP_COLS)} FROM "
            f"{checkpoints.name} WHERE tenant_id = :tenant AND thread_id = :thread AND checkpoint_ns = :ns "
            f"AND {which}) "
            f"SELECT 0, {cp_cols}, {blob_cols}, {nulls_after} FROM c "
            # a lookup per entry: a plain join may hash every blob row of the thread, and
            # LIMIT 1 (one row per key) keeps the planner from flattening the LATERAL into one
            "LEFT JOIN LATERAL json_each_text(CAST(c.channel_versions AS json)) AS j ON true "
            f"LEFT JOIN LATERAL (SELECT {', '.join(c.name for c in _BLOB_COLS)} FROM {checkpoint_blobs.name} AS b "
            "WHERE b.tenant_id = c.tenant_id AND b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns "
            "AND b.channel = j.key AND b.version = j.value LIMIT 1) AS b ON true "
            # the keys as scalar subqueries: evaluated once, they key the index scan (as a join
            # condition the planner may scan every write of the thread and filter)
            f"UNION ALL SELECT 1, {nulls_before}, {', '.join(f'w.{c}' for c in write_cols)} "
            f"FROM {checkpoint_writes.name} AS w WHERE w.tenant_id = (SELECT tenant_id FROM c) "
            "AND w.thread_id = (SELECT thread_id FROM c) AND w.checkpoint_ns = (SELECT checkpoint_ns FROM c) "
            "AND w.checkpoint_id = (SELECT checkpoint_id FROM c)"
        ).columns(*(column(f"c{i}") for i in range(1 + len(_CP_COLS) + len(_BLOB_COLS) + len(write_cols))))

    def _with_values(self, which: str) -> Any:
        """SQLite: a checkpoint of one thread and namespace (``which``: the rest of its WHERE)
        joined to the blob row of each entry of its ``channel_versions`` (a primary-key lookup
        per entry): columns of ``_CP_COLS``, then of ``_BLOB_COLS`` (NULL for a checkpoint
        without channels)."""
        cp_cols = ", ".join(f"c.{c.name}" for c in _CP_COLS)
        blob_cols = ", ".join(f"b.{c.name}" for c in _BLOB_COLS)
        joins = f"LEFT JOIN json_each(c.channel_versions) AS j LEFT JOIN {checkpoint_blobs.name} AS b ON {_BLOB_OF_ENTRY}"
        return text(
            f"SELECT {cp_cols}, {blob_cols} FROM (SELECT {', '.join(c.name for c in _CP_COLS)} "
            f"FROM {checkpoints.name} WHERE tenant_id = :tenant AND thread_id = :thread AND checkpoint_ns = :ns "
            f"AND {which}) AS c {joins}"
        ).columns(*_CP_COLS, *_BLOB_COLS)

    def _guarded_insert(self, table: Table) -> Any:
        """INSERT of one row given as parameters, skipped when the thread's tombstone
        mark is at or after the parameter ``guard_cid`` (a checkpoint id)."""
        P = bindparam
        tombstoned = exists().where(
            _ts.tenant_id == P("tenant_id"), _ts.thread_id == P("thread_id"), _ts.mark >= P("guard_cid")
        )
        values = select(*[P(c.name, type_=c.type) for c in table.c]).where(~tombstoned)
        return self._insert(table).from_select([c.name for c in table.c], values)

    # -- put -----------------------------------------------------------------------

    def put(self, record: CheckpointRecord) -> bool:
        """Store a checkpoint; False if it was ignored because its thread was deleted."""
        if self.db.backend == "postgresql":
            _refuse_nul("channel name or version", [
                *(t for v in record.new_values for t in (v.channel, v.version)),
                *(t for item in record.channel_versions.items() for t in item),
            ])
        # a checkpoint written again may carry other values
        self._carried.pop((record.tenant, record.thread_id, record.checkpoint_ns, record.checkpoint_id))
        rows, pending = self._deltas.encode(record)
        if self.db.backend == "postgresql" and _one_statement_fits(rows, [(r.channel, r.version) for r in rows]):
            stored = self._run(self._put_one_plan(record, rows), single=True)
        else:
            stored = self.db.write(self._put_steps(record, rows), parts=PARTS)
        if stored:
            self._deltas.commit(pending)
            if any(row.kind == "delta" for row in rows):
                full = {v.channel: v for v in record.new_values}
                for row in rows:
                    if row.kind == "delta" and cacheable_version(row.version):
                        value = full[row.channel]
                        self._recent.put((record.tenant, record.thread_id, record.checkpoint_ns, row.channel,
                                          row.version), (value.type, value.data))
        return bool(stored)

    def _put_steps(self, rec: CheckpointRecord, rows: list[BlobRow]) -> list[Step]:
        key = {"tenant_id": rec.tenant, "thread_id": rec.thread_id, "checkpoint_ns": rec.checkpoint_ns,
               "guard_cid": rec.checkpoint_id}
        steps = []
        if rows:
            steps.append(Step(
                self._q_put_blobs,
                [
                    {
                        **key,
                        "channel": r.channel,
                        "version": r.version,
                        "kind": r.kind,
                        "type": r.type,
                        "data": r.data,
                        "base_version": r.base_version,
                        "prev_version": r.prev_version,
                        "items": r.items,
                    }
                    for r in rows
                ],
            ))
        # the checkpoint last: its row count (1 stored, 0 when the thread was deleted) is the result
        steps.append(Step(self._q_put_checkpoint, {
            **key,
            "checkpoint_id": rec.checkpoint_id,
            "parent_checkpoint_id": rec.parent_id,
            "run_id": rec.run_id,
            "type": rec.type,
            "checkpoint": rec.data,
            "channel_versions": _compact_json(rec.channel_versions),
            "metadata": rec.metadata_json,
        }))
        return steps

    def _put_one_plan(self, rec: CheckpointRecord, rows: list[BlobRow]) -> Plan[bool]:
        params: dict[str, Any] = {
            "tenant_id": rec.tenant, "thread_id": rec.thread_id, "checkpoint_ns": rec.checkpoint_ns,
            "guard_cid": rec.checkpoint_id, "checkpoint_id": rec.checkpoint_id,
            "parent_checkpoint_id": rec.parent_id, "run_id": rec.run_id, "type": rec.type,
            "checkpoint": rec.data, "channel_versions": _compact_json(rec.channel_versions),
            "metadata": rec.metadata_json,
        }
        if rows:
            params.update(_packed(
                ([r.channel, r.version, r.kind, r.type, r.base_version, r.prev_version, r.items], r.data) for r in rows))
        stored = yield Step(self._q_put_one if rows else self._q_put_one_bare, params)
        return bool(stored)

    # -- put_writes ----------------------------------------------------------------

    def put_writes(
        self, tenant: str, thread_id: str, checkpoint_ns: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> bool:
        """Store a task's pending writes; False if ignored because the thread was deleted.

        A write with a non-negative ``idx`` is kept as first written (a retried task does
        not overwrite it); a special write (negative ``idx``: error, interrupt, ...) is
        replaced by the latest one.
        """
        if not writes:
            return True
        if self.db.backend == "postgresql":
            _refuse_nul("task id, task path or channel name", [t for w in writes for t in (w.task_id, w.task_path,
                                                                                              w.channel)])
        if (self.db.backend == "postgresql" and all(w.idx >= 0 for w in writes)
                and _one_statement_fits(writes, [(w.task_id, w.idx) for w in writes])):
            return self._run(self._put_writes_one_plan(tenant, thread_id, checkpoint_ns, checkpoint_id, writes),
                               single=True)
        self.db.write(self._put_writes_steps(tenant, thread_id, checkpoint_ns, checkpoint_id, writes), parts=PARTS)
        return True

    def _put_writes_one_plan(
        self, tenant: str, thread_id: str, ns: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> Plan[bool]:
        """PostgreSQL, regular writes only (kept as first written): one statement."""
        yield Step(self._q_put_writes_one, {
            "tenant_id": tenant, "thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id,
            "guard_cid": checkpoint_id,
            **_packed(([w.task_id, w.idx, w.channel, w.type, w.task_path], w.data) for w in writes),
        })
        return True

    def _put_writes_steps(
        self, tenant: str, thread_id: str, ns: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> list[Step]:
        key = {"tenant_id": tenant, "thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id,
               "guard_cid": checkpoint_id}
        regular = [w for w in writes if w.idx >= 0]
        special = [w for w in writes if w.idx < 0] if len(regular) < len(writes) else []
        return [
            Step(stmt, [
                {**key, "task_id": w.task_id, "idx": w.idx, "channel": w.channel, "type": w.type, "data": w.data,
                 "task_path": w.task_path}
                for w in group
            ])
            for group, stmt in ((regular, self._q_put_writes_keep), (special, self._q_put_writes_replace))
            if group
        ]

    # -- reads ---------------------------------------------------------------------

    def get(
        self, tenant: str, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None:
        """One checkpoint with its values and writes: ``checkpoint_id``, or the latest."""
        return self._run(self._get_plan(tenant, thread_id, checkpoint_ns, checkpoint_id), write=False)

    def _get_plan(self, tenant: str, thread_id: str, ns: str, checkpoint_id: str | None) -> Plan[StoredCheckpoint | None]:
        params = {"tenant": tenant, "thread": thread_id, "ns": ns}
        writes: list[Any] | None = None
        if self.db.backend == "postgresql":  # the writes come in the same statement
            if checkpoint_id is None:
                rows = yield Step(self._q_get_latest_all, params)
            else:
                rows = yield Step(self._q_get_one_all, {**params, "cid": checkpoint_id})
            after = 1 + len(_CP_COLS) + len(_BLOB_COLS)
            writes = [r[after:] for r in rows if r[0] == 1]
            rows = [r[1:after] for r in rows if r[0] == 0]
        elif checkpoint_id is None:
            rows = yield Step(self._q_get_latest_values, params)
        else:
            rows = yield Step(self._q_get_one_values, {**params, "cid": checkpoint_id})
        if not rows:
            return None
        cp = _stored(rows[0])
        at = len(_CP_COLS)
        fetched = {(r[at], r[at + 1]): _blob_row(r[at:]) for r in rows if r[at] is not None}
        blobs = yield from self._fetch_blobs(params, sorted(cp.channel_versions.items()), fetched)
        cp.bind_values(blobs, f"thread {thread_id!r} namespace {ns!r}")
        if writes is None:
            writes = yield Step(self._q_writes_one, {**params, "cid": cp.checkpoint_id})
        cp.writes.extend(_write_record(r) for r in writes)
        cp.writes.sort(key=_write_order)
        return cp

    def _load_values_and_writes(self, tenant: str, found: list[StoredCheckpoint]) -> Plan[None]:
        by_ns: dict[tuple[str, str], list[StoredCheckpoint]] = {}
        for cp in found:
            by_ns.setdefault((cp.thread_id, cp.checkpoint_ns), []).append(cp)
        for (thread_id, ns), group in by_ns.items():
            params: dict[str, Any] = {"tenant": tenant, "thread": thread_id, "ns": ns}
            wanted = sorted({(ch, v) for cp in group for ch, v in cp.channel_versions.items()})
            blobs = yield from self._fetch_blobs(params, wanted)
            where = f"thread {thread_id!r} namespace {ns!r}"
            for cp in group:
                # values are rebuilt when read (StoredCheckpoint.channel_values), so a page of
                # checkpoints holds each stored row once, not one rebuilt list per checkpoint
                cp.bind_values(blobs, where)
            by_id = {cp.checkpoint_id: cp for cp in group}
            if len(by_id) == 1:
                batches = [(self._q_writes_one, {**params, "cid": group[0].checkpoint_id})]
            else:
                batches = [(self._q_writes, {**params, "ids": list(part)}) for part in _chunks(list(by_id))]
            for stmt, args in batches:
                rows = yield Step(stmt, args)
                for r in rows:
                    by_id[r[0]].writes.append(_write_record(r))
            for cp in group:
                cp.writes.sort(key=_write_order)

    def _fetch_blobs(
        self, params: dict[str, Any], wanted: Sequence[tuple[str, str]],
        fetched: dict[tuple[str, str], BlobRow] | None = None,
    ) -> Plan[dict[tuple[str, str], BlobRow]]:
        """The stored rows of the ``wanted`` channel versions, each delta with its chain;
        rows already read (``fetched``) are not read again."""
        out: dict[tuple[str, str], BlobRow] = {}
        scope = (params["tenant"], params["thread"], params["ns"])
        missing = []
        for ch, v in wanted:
            cached = self._recent.get((*scope, ch, v)) if cacheable_version(v) else None
            if cached is not None:  # a value this process wrote: its bytes, without reading the delta chain
                out[(ch, v)] = BlobRow(ch, v, "full", cached[0], cached[1])
            elif fetched is not None and (ch, v) in fetched:
                out[(ch, v)] = fetched[(ch, v)]
            else:  # also a key the join missed (SQL's JSON reading of a name may differ from Python's)
                missing.append((ch, v))
        wanted = missing
        if self._lookup_keys_one_by_one:
            lookups = [Step(self._q_blob_one, {**params, "ch": ch, "v": v}) for ch, v in wanted]
        else:
            lookups = [
                Step(self._q_blobs_any, {**params, "chs": sorted({k[0] for k in part}), "vs": sorted({k[1] for k in part})})
                for part in _chunks(wanted)
            ]
        wanted_set = set(wanted)
        for step in lookups:
            for r in (yield step):
                if (r[0], r[1]) in wanted_set:
                    out[(r[0], r[1])] = _blob_row(r)
        bases = sorted({(b.channel, b.base_version) for b in out.values() if b.kind == "delta" and b.base_version})
        if len(bases) <= 4:
            chains = [Step(self._q_chain_one, {**params, "ch": ch, "base": base}) for ch, base in bases]
        else:
            chains = [Step(self._q_chains, {**params, "bases": list(p), "base_keys": list(p)}) for p in _chunks(bases)]
        for step in chains:
            for r in (yield step):
                out[(r[0], r[1])] = _blob_row(r)
        return out

    def list_checkpoints(self, query: ListQuery) -> Iterator[StoredCheckpoint]:
        """Checkpoints matching ``query``, newest first, fetched a page at a time."""
        cursor: tuple[str, str, str] | None = None
        remaining = query.limit
        while remaining is None or remaining > 0:
            page, cursor = self._run(self._list_page_plan(query, cursor, remaining), write=False)
            yield from page
            if remaining is not None:
                remaining -= len(page)
            if cursor is None:
                return

    async def alist_checkpoints(self, query: ListQuery) -> AsyncIterator[StoredCheckpoint]:
        """Async twin of :meth:`list_checkpoints`."""
        cursor: tuple[str, str, str] | None = None
        remaining = query.limit
        while remaining is None or remaining > 0:
            page, cursor = await self.db.offload(self._run, self._list_page_plan(query, cursor, remaining), write=False)
            for cp in page:
                yield cp
            if remaining is not None:
                remaining -= len(page)
            if cursor is None:
                return

    def _list_page_plan(
        self, q: ListQuery, cursor: tuple[str, str, str] | None, remaining: int | None
    ) -> Plan[tuple[list[StoredCheckpoint], tuple[str, str, str] | None]]:
        where: list[ColumnElement[bool]] = [_cp.tenant_id == q.tenant]
        if q.thread_id is not None:
            where.append(_cp.thread_id == q.thread_id)
        if q.checkpoint_ns is not None:
            where.append(_cp.checkpoint_ns == q.checkpoint_ns)
        if q.checkpoint_id is not None:
            where.append(_cp.checkpoint_id == q.checkpoint_id)
        if q.before is not None:
            where.append(_cp.checkpoint_id < q.before)
        if cursor is not None:
            where.append(tuple_(_cp.checkpoint_id, _cp.thread_id, _cp.checkpoint_ns) < tuple_(*cursor))
        size = _PAGE if q.metadata_filter or remaining is None else min(_PAGE, remaining)
        rows = yield Step(
            select(*_CP_COLS)
            .where(*where)
            .order_by(_cp.checkpoint_id.desc(), _cp.thread_id.desc(), _cp.checkpoint_ns.desc())
            .limit(size)
        )
        next_cursor = (rows[-1][2], rows[-1][0], rows[-1][1]) if len(rows) == size else None
        page = [_stored(r) for r in rows if _matches(r[7], q.metadata_filter)]
        if remaining is not None:
            page = page[:remaining]
        yield from self._load_values_and_writes(q.tenant, page)
        return page, next_cursor

    def delta_history(
        self, tenant: str, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None, channels: Sequence[str],
        row_values: RowValues | None = None,
    ) -> DeltaHistory | None:
        """The ancestors' writes and nearest stored value of ``channels`` (see
        :class:`DeltaHistory`), read in a few queries instead of one read per ancestor.

        ``row_values(type, data)`` gives the values a checkpoint row carries in its own data
        (a caller that keeps some there, see :class:`CheckpointRecord`): an ancestor that
        carries one of ``channels`` holds its value too. None if the checkpoint does not exist.
        """
        plan = self._delta_history_plan(tenant, thread_id, checkpoint_ns, checkpoint_id, list(channels), row_values)
        return self._run(plan, write=False)

    def _delta_history_plan(
        self, tenant: str, thread_id: str, ns: str, checkpoint_id: str | None, channels: list[str],
        row_values: RowValues | None = None,
    ) -> Plan[DeltaHistory | None]:
        params: dict[str, Any] = {"tenant": tenant, "thread": thread_id, "ns": ns}
        if checkpoint_id is None:
            rows = yield Step(self._q_get_latest, params)
            if not rows:
                return None
            checkpoint_id = rows[0][2]
        graph = yield Step(
            select(_cp.checkpoint_id, _cp.parent_checkpoint_id, _cp.channel_versions).where(
                _cp.tenant_id == tenant, _cp.thread_id == thread_id, _cp.checkpoint_ns == ns
            )
        )
        nodes = {r[0]: (r[1], r[2]) for r in graph}
        if checkpoint_id not in nodes:
            return None
        kinds = yield Step(
            select(_bl.channel, _bl.version, _bl.kind).where(
                _bl.tenant_id == tenant, _bl.thread_id == thread_id, _bl.checkpoint_ns == ns,
                _bl.channel.in_(channels),
            )
        )
        stored = {(r[0], r[1]) for r in kinds if r[2] != EMPTY}
        remaining = set(channels)
        ancestors: list[str] = []
        stored_versions: dict[str, dict[str, str]] = {}  # ancestor -> its channel_versions (parsed)
        seeds: dict[str, tuple[str, str]] = {}  # channel -> (checkpoint id, version)
        seen = {checkpoint_id}
        cursor = nodes[checkpoint_id][0]
        while cursor is not None and remaining and cursor in nodes and cursor not in seen:
            seen.add(cursor)
            ancestors.append(cursor)
            parent, versions_json = nodes[cursor]
            versions = stored_versions[cursor] = json.loads(versions_json)
            for ch in list(remaining):
                v = versions.get(ch)
                if v is not None and (ch, v) in stored:
                    seeds[ch] = (cursor, v)
                    remaining.discard(ch)
            cursor = parent
        writes: dict[str, list[WriteRecord]] = {cid: [] for cid in ancestors}
        for part in _chunks(ancestors):
            rows = yield Step(
                select(_wr.checkpoint_id, _wr.task_id, _wr.idx, _wr.channel, _wr.type, _wr.data, _wr.task_path).where(
                    _wr.tenant_id == tenant, _wr.thread_id == thread_id, _wr.checkpoint_ns == ns,
                    _wr.checkpoint_id.in_(part), _wr.channel.in_(channels),
                )
            )
            for r in rows:
                writes[r[0]].append(_write_record(r))
        seed_rows = yield from self._fetch_blobs(params, sorted({(ch, v) for ch, (_, v) in seeds.items()}))
        where = f"thread {thread_id!r} namespace {ns!r}"
        seed_values = {}
        for ch, (_, v) in seeds.items():
            value = assemble_value(ch, v, seed_rows, where)
            if value is not None:
                seed_values[ch] = value
        if row_values is not None:
            carried = yield from self._carried_seeds(params, stored_versions, ancestors, channels, seeds, row_values)
            for ch, (cid, value) in carried.items():
                seeds[ch] = (cid, "")
                seed_values[ch] = value
        # until each channel's seed: only the ancestors up to (and including) its seed count
        per_channel: dict[str, list[WriteRecord]] = {ch: [] for ch in channels}
        for ch in channels:
            stop = seeds.get(ch, (None, None))[0]
            for cid in ancestors:
                own = sorted((w for w in writes[cid] if w.channel == ch), key=lambda w: (w.task_path, w.task_id, w.idx))
                per_channel[ch][:0] = own  # older ancestors go first
                if cid == stop:
                    break
        return DeltaHistory(per_channel, seed_values)

    def _carried_seeds(
        self, params: dict[str, Any], stored_versions: dict[str, dict[str, str]], ancestors: list[str],
        channels: list[str], seeds: dict[str, tuple[str, str]], row_values: RowValues,
    ) -> Plan[dict[str, tuple[str, tuple[str, bytes]]]]:
        """Per channel, the nearest ancestor newer than its stored seed whose own row carries
        its value (a channel kept in the row has no version among the stored ones: LangGraph
        seeds a delta channel made from a plain one with its last plain value), and the value."""
        maybe: dict[str, list[str]] = {}  # ancestor -> channels its row may carry
        for ch in channels:
            stop = seeds.get(ch, (None, ""))[0]
            for cid in ancestors:
                if cid == stop:
                    break
                if ch not in stored_versions[cid]:
                    maybe.setdefault(cid, []).append(ch)
        # read newest first, in growing batches, until each channel has its carrier: the value
        # a plain channel left is usually in the ancestor just before it became a delta channel
        found: dict[str, tuple[str, tuple[str, bytes]]] = {}
        order = [cid for cid in ancestors if cid in maybe]
        at, size = 0, 16
        while at < len(order) and any(ch not in found for cid in order[at:] for ch in maybe[cid]):
            part = order[at:at + size]
            keys = {cid: (params["tenant"], params["thread"], params["ns"], cid) for cid in part}
            cached = self._carried.get_many(keys.values())
            held = {cid: cached[key] for cid, key in keys.items() if key in cached}
            unread = [cid for cid in part if cid not in held]
            if unread:
                rows = yield Step(select(_cp.checkpoint_id, _cp.type, _cp.checkpoint).where(
                    _cp.tenant_id == params["tenant"], _cp.thread_id == params["thread"],
                    _cp.checkpoint_ns == params["ns"], _cp.checkpoint_id.in_(unread),
                ))
                read = {r[0]: row_values(r[1], bytes(r[2])) for r in rows}
                held.update(read)
                for cid, values in read.items():
                    self._carried.put(keys[cid], values)
            for cid in part:  # newest first
                for ch in maybe[cid]:
                    if ch not in found and ch in held.get(cid, {}):
                        found[ch] = (cid, held[cid][ch])
            at, size = at + size, min(size * 2, _CHUNK)
        return found

    # -- deletes, copies, prunes ---------------------------------------------------

    def first_metadata(self, tenant: str, thread_id: str) -> dict[str, Any] | None:
        """The metadata of a thread's oldest root checkpoint (None for an empty thread): where a
        fork records what it was forked from."""
        c = checkpoints.c

        def plan() -> Plan[dict[str, Any] | None]:
            rows = yield Step(
                select(c.metadata).where(c.tenant_id == tenant, c.thread_id == thread_id, c.checkpoint_ns == "")
                .order_by(c.checkpoint_id).limit(1)
            )
            return dict(json.loads(rows[0][0])) if rows else None

        return self._run(plan(), write=False)

    def stopped_tasks(self, tenant: str, thread_id: str) -> list[tuple[str, str]]:
        """The nodes whose task ended in an error or an interrupt at the thread's latest
        checkpoint (root namespace), as ``(node, "__error__" | "__interrupt__")`` pairs."""
        w, c = checkpoint_writes.c, checkpoints.c

        def plan() -> Plan[list[tuple[str, str]]]:
            latest = yield Step(
                select(c.checkpoint_id).where(c.tenant_id == tenant, c.thread_id == thread_id, c.checkpoint_ns == "")
                .order_by(c.checkpoint_id.desc()).limit(1)
            )
            if not latest:
                return []
            rows = yield Step(
                select(w.task_path, w.channel).where(
                    w.tenant_id == tenant, w.thread_id == thread_id, w.checkpoint_ns == "",
                    w.checkpoint_id == latest[0][0], w.channel.in_(("__error__", "__interrupt__")),
                ).order_by(w.task_id, w.idx)
            )
            return [(str(path).rpartition(", ")[2] or str(path), str(channel)) for path, channel in rows]

        return self._run(plan(), write=False)

    def delete_thread(self, tenant: str, thread_id: str, mark: str) -> None:
        """Delete every checkpoint, value and write of a thread, and leave a tombstone.

        ``mark`` is a checkpoint-id-like string made at deletion time: a later put or
        put_writes for a checkpoint whose id sorts at or before it is ignored.
        """
        self._run(self._delete_threads_plan(tenant, [thread_id], mark))
        self._forget(tenant, [thread_id])

    def _forget(self, tenant: str, thread_ids: Sequence[str]) -> None:
        self._deltas.forget(tenant, thread_ids)
        self._recent.forget(tenant, thread_ids)
        self._carried.forget(tenant, thread_ids)

    def _delete_threads_plan(self, tenant: str, thread_ids: Sequence[str], mark: str) -> Plan[None]:
        for table in (checkpoints, checkpoint_blobs, checkpoint_writes):
            for part in _chunks(list(thread_ids)):
                yield Step(delete(table).where(table.c.tenant_id == tenant, table.c.thread_id.in_(part)))
        ins = self._insert(thread_tombstones)
        yield Step(
            ins.on_conflict_do_update(index_elements=[_ts.tenant_id, _ts.thread_id], set_={"mark": ins.excluded.mark}),
            [{"tenant_id": tenant, "thread_id": t, "mark": mark} for t in thread_ids],
        )

    def copy_thread(self, tenant: str, source: str, target: str) -> int:
        """Copy every checkpoint, value and write of ``source`` to ``target``.

        The target must have no checkpoints; its tombstone, if any, is lifted. Returns the
        number of checkpoints copied.
        """
        return self._run(self._copy_plan(tenant, source, target))

    def _copy_plan(self, tenant: str, source: str, target: str) -> Plan[int]:
        existing = yield Step(select(_cp.checkpoint_id).where(_cp.tenant_id == tenant, _cp.thread_id == target).limit(1))
        if existing:
            raise InvalidCheckpointError(
                f"cannot copy thread {source!r} onto {target!r}: the target already has "
                "checkpoints; delete it first or choose a new thread id"
            )
        yield Step(delete(thread_tombstones).where(_ts.tenant_id == tenant, _ts.thread_id == target))
        copied = 0
        for table in (checkpoint_blobs, checkpoints, checkpoint_writes):
            cols = [c for c in table.c if c.name not in ("tenant_id", "thread_id")]
            yield_result = yield Step(
                table.insert().from_select(
                    ["tenant_id", "thread_id", *[c.name for c in cols]],
                    select(literal(tenant), literal(target), *cols).where(
                        table.c.tenant_id == tenant, table.c.thread_id == source
                    ),
                )
            )
            if table is checkpoints:
                copied = int(yield_result or 0)
        return copied

    def delete_for_runs(self, tenant: str, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) made by the given runs.

        Channel values still needed by a remaining checkpoint (directly or as the start of
        a delta chain) are kept; the rest are removed.
        """
        if run_ids:
            touched = self._run(self._delete_runs_plan(tenant, list(run_ids)))
            self._forget(tenant, touched)

    def _delete_runs_plan(self, tenant: str, run_ids: list[str]) -> Plan[list[str]]:
        victims: list[tuple[str, str, str]] = []
        for part in _chunks(run_ids):
            rows = yield Step(
                select(_cp.thread_id, _cp.checkpoint_ns, _cp.checkpoint_id).where(
                    _cp.tenant_id == tenant, _cp.run_id.in_(part)
                )
            )
            victims.extend((r[0], r[1], r[2]) for r in rows)
        yield from self._delete_checkpoints(tenant, victims)
        return sorted({v[0] for v in victims})

    def prune(self, tenant: str, thread_ids: Sequence[str], strategy: str, mark: str) -> None:
        """Prune threads: ``"keep_latest"`` keeps the newest checkpoint of each namespace
        (plus, for LangGraph delta channels, the ancestors back to their last snapshot);
        ``"delete"`` deletes the threads like :meth:`delete_thread`.
        """
        if strategy not in ("keep_latest", "delete"):
            raise InvalidCheckpointError(f"unknown prune strategy {strategy!r}; use 'keep_latest' or 'delete'")
        if not thread_ids:
            return
        if strategy == "delete":
            self._run(self._delete_threads_plan(tenant, list(thread_ids), mark))
        else:
            self._run(self._keep_latest_plan(tenant, list(thread_ids)))
        self._forget(tenant, thread_ids)

    def _keep_latest_plan(self, tenant: str, thread_ids: list[str]) -> Plan[None]:
        victims: list[tuple[str, str, str]] = []
        for thread_id in thread_ids:
            rows = yield Step(
                select(_cp.checkpoint_ns, _cp.checkpoint_id, _cp.parent_checkpoint_id, _cp.channel_versions, _cp.metadata)
                .where(_cp.tenant_id == tenant, _cp.thread_id == thread_id)
                .order_by(_cp.checkpoint_ns, _cp.checkpoint_id.desc())
            )
            by_ns: dict[str, list[Any]] = {}
            for r in rows:
                by_ns.setdefault(r[0], []).append(r)
            empties = yield from self._empty_versions(tenant, thread_id)
            for ns, group in by_ns.items():
                keep = _kept_for_delta_channels(group, empties.get(ns, set()))
                victims.extend((thread_id, ns, r[1]) for r in group if r[1] not in keep)
        yield from self._delete_checkpoints(tenant, victims)

    def _empty_versions(self, tenant: str, thread_id: str) -> Plan[dict[str, set[tuple[str, str]]]]:
        rows = yield Step(
            select(_bl.checkpoint_ns, _bl.channel, _bl.version).where(
                _bl.tenant_id == tenant, _bl.thread_id == thread_id, _bl.kind == EMPTY
            )
        )
        out: dict[str, set[tuple[str, str]]] = {}
        for r in rows:
            out.setdefault(r[0], set()).add((r[1], r[2]))
        return out

    def _delete_checkpoints(self, tenant: str, victims: list[tuple[str, str, str]]) -> Plan[None]:
        by_ns: dict[tuple[str, str], list[str]] = {}
        for thread_id, ns, cid in victims:
            by_ns.setdefault((thread_id, ns), []).append(cid)
        for (thread_id, ns), ids in by_ns.items():
            for table in (checkpoints, checkpoint_writes):
                for part in _chunks(ids):
                    yield Step(
                        delete(table).where(
                            table.c.tenant_id == tenant, table.c.thread_id == thread_id,
                            table.c.checkpoint_ns == ns, table.c.checkpoint_id.in_(part),
                        )
                    )
            yield from self._collect_blobs(tenant, thread_id, ns)

    def _collect_blobs(self, tenant: str, thread_id: str, ns: str) -> Plan[None]:
        """Delete the values of (thread, ns) that no remaining checkpoint can reach."""
        rows = yield Step(
            select(_cp.channel_versions).where(
                _cp.tenant_id == tenant, _cp.thread_id == thread_id, _cp.checkpoint_ns == ns
            )
        )
        live: set[tuple[str, str]] = set()
        for r in rows:
            live.update(json.loads(r[0]).items())
        blob_rows = yield Step(
            select(_bl.channel, _bl.version, _bl.prev_version).where(
                _bl.tenant_id == tenant, _bl.thread_id == thread_id, _bl.checkpoint_ns == ns
            )
        )
        prev = {(r[0], r[1]): r[2] for r in blob_rows}
        reachable: set[tuple[str, str]] = set()
        for key in live:
            while key in prev and key not in reachable:
                reachable.add(key)
                p = prev[key]
                if p is None:
                    break
                key = (key[0], p)
        dead = [k for k in prev if k not in reachable]
        for part in _chunks(dead):
            yield Step(
                delete(checkpoint_blobs).where(
                    _bl.tenant_id == tenant, _bl.thread_id == thread_id, _bl.checkpoint_ns == ns,
                    tuple_(_bl.channel, _bl.version).in_(part),
                )
            )

    # -- async twins ---------------------------------------------------------------

    async def aput(self, record: CheckpointRecord) -> bool:
        """Async twin of :meth:`put`."""
        return await self.db.offload(self.put, record)

    async def aput_writes(
        self, tenant: str, thread_id: str, checkpoint_ns: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> bool:
        """Async twin of :meth:`put_writes`."""
        return await self.db.offload(self.put_writes, tenant, thread_id, checkpoint_ns, checkpoint_id, writes)

    async def aget(
        self, tenant: str, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None:
        """Async twin of :meth:`get`."""
        return await self.db.offload(self.get, tenant, thread_id, checkpoint_ns, checkpoint_id)

    async def adelete_thread(self, tenant: str, thread_id: str, mark: str) -> None:
        """Async twin of :meth:`delete_thread`."""
        await self.db.offload(self.delete_thread, tenant, thread_id, mark)

    async def acopy_thread(self, tenant: str, source: str, target: str) -> int:
        """Async twin of :meth:`copy_thread`."""
        return await self.db.offload(self.copy_thread, tenant, source, target)

    async def adelete_for_runs(self, tenant: str, run_ids: Sequence[str]) -> None:
        """Async twin of :meth:`delete_for_runs`."""
        await self.db.offload(self.delete_for_runs, tenant, run_ids)

    async def adelta_history(
        self, tenant: str, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None, channels: Sequence[str],
        row_values: RowValues | None = None,
    ) -> DeltaHistory | None:
        """Async twin of :meth:`delta_history`."""
        return await self.db.offload(self.delta_history, tenant, thread_id, checkpoint_ns, checkpoint_id, channels,
                                     row_values)

    async def aprune(self, tenant: str, thread_ids: Sequence[str], strategy: str, mark: str) -> None:
        """Async twin of :meth:`prune`."""
        await self.db.offload(self.prune, tenant, thread_ids, strategy, mark)


def _kept_for_delta_channels(group: Iterable[Any], empty_versions: set[tuple[str, str]]) -> set[str]:
    """The checkpoint ids keep_latest must keep in one namespace.

    ``group`` rows are (ns, id, parent_id, channel_versions_json, metadata_json), newest
    first. Besides the newest checkpoint, LangGraph delta channels (named in the
    metadata's ``counters_since_delta_snapshot``) need their ancestors and writes back to
    the nearest checkpoint that holds a stored value for the channel.
    """
    rows = list(group)
    if not rows:
        return set()
    latest = rows[0]
    keep = {latest[1]}
    delta_channels = set(json.loads(latest[4]).get("counters_since_delta_snapshot") or {})
    if not delta_channels:
        return keep
    by_id = {r[1]: r for r in rows}
    cursor = latest
    missing = set(delta_channels)
    while True:
        versions = json.loads(cursor[3])
        for ch in list(missing):
            v = versions.get(ch)
            if v is not None and (ch, v) not in empty_versions:
                missing.discard(ch)
        if not missing or cursor[2] is None or cursor[2] not in by_id:
            return keep
        cursor = by_id[cursor[2]]
        keep.add(cursor[1])


_ONE_STATEMENT_BYTES = 64 * 2**20

def _refuse_nul(what: str, texts: Iterable[str]) -> None:
    """PostgreSQL: InvalidCheckpointError for a text its columns cannot hold (a NUL character),
    before anything is sent."""
    for t in texts:
        if "\x00" in t:
            raise InvalidCheckpointError(
                f"PostgreSQL text cannot hold a NUL character, found in the {what} {t!r}; nothing was "
                "written. Remove it (SQLite stores it)")


# PostgreSQL: the rows of a one-statement write (parameters made by _packed), each as r.m
_PACKED_ROWS = "json_array_elements(CAST(:rows AS json)) AS r(m)"


def _packed_data(at: int) -> str:
    """The expression of a packed row's data, whose offset is its JSON element ``at``."""
    return f"substring(CAST(:data AS bytea) FROM CAST(r.m->>{at} AS integer) + 1 FOR CAST(r.m->>{at + 1} AS integer))"


def _packed(rows: Iterable[tuple[list[Any], bytes]]) -> dict[str, str | bytes]:
    """Rows of (text and integer columns, data) as two parameters: ``rows``, a JSON array of
    each row's columns followed by its data's offset and length, and ``data``, every row's
    data in one string of bytes (see _PACKED_ROWS and _packed_data)."""
    columns: list[list[Any]] = []
    chunks: list[bytes] = []
    at = 0
    for row, data in rows:
        columns.append([*row, at, len(data)])
        chunks.append(data)
        at += len(data)
    return {"rows": json.dumps(columns, ensure_ascii=False, separators=(",", ":")), "data": b"".join(chunks)}


def _one_statement_fits(rows: Sequence[Any], keys: list[tuple[Any, Any]]) -> bool:
    """Whether rows may go in one PostgreSQL statement: no key twice (an upsert may not
    touch a row twice in one statement; rows written one by one let the last one win), and
    their data together well under the server's 1 GB message (each value alone may be
    near it when written one by one)."""
    return len(set(keys)) == len(rows) and sum(len(r.data) for r in rows) < _ONE_STATEMENT_BYTES


def _binary_data(statement: Any) -> Any:
    """``statement`` with its ``data`` and ``checkpoint`` bytes sent in binary: psycopg sends
    bytes hex-encoded, at twice the size, otherwise."""
    for name in ("data", "checkpoint"):
        statement.sql = statement.sql.replace(f"%({name})s", f"%({name})b")
    return statement
