"""Database.write: statements known up front, in one write transaction (the checkpointer's
put and put_writes). SQLite runs them straight on the writers' connection; a failure there
goes through Database.run, which tries again what is transient and types the rest."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.errors import DatabaseUnavailableError, StorageError


def _table(db: Database) -> None:
    blob = "BYTEA" if db.backend == "postgresql" else "BLOB"

    def plan() -> Plan[None]:
        yield Step(text(f"CREATE TABLE static_probe (k INTEGER PRIMARY KEY, v {blob})"))
    db.run(plan())


def _keys(db: Database) -> list[int]:
    def plan() -> Plan[list[int]]:
        rows = yield Step(text("SELECT k FROM static_probe ORDER BY k"))
        return [int(r[0]) for r in rows]
    return db.run(plan(), write=False)


@contextlib.contextmanager
def _probe(url: str, **options: Any) -> Iterator[tuple[Database, Any]]:
    """A database at ``url`` with the probe table, and its prepared insert of (k, v)."""
    db = Database(url, **options)
    try:
        _table(db)
        yield db, db.prepare(text("INSERT INTO static_probe (k, v) VALUES (:k, :v)"))
    finally:
        db.close()


def test_steps_are_written_together_or_not_at_all(db_url: str) -> None:
    with _probe(db_url) as (db, insert):
        # the result is the last statement's: a row count, for one row or for many
        assert db.write([Step(insert, {"k": 1, "v": b"a"}), Step(insert, {"k": 2, "v": None})]) == 1
        assert db.write([Step(insert, [{"k": k, "v": b"x"} for k in (3, 4, 5)])]) == 3
        # a step that fails (a duplicate key) takes the steps before it back with it
        with pytest.raises(StorageError):
            db.write([Step(insert, {"k": 6, "v": b"b"}), Step(insert, {"k": 2, "v": b"dup"})])
        with pytest.raises(StorageError):
            db.write([Step(insert, [{"k": 7, "v": b"c"}, {"k": 1, "v": b"dup"}])])
        assert _keys(db) == [1, 2, 3, 4, 5]
        # and the connection stays usable
        assert db.write([Step(insert, {"k": 6, "v": b"b"})]) == 1
        assert _keys(db) == [1, 2, 3, 4, 5, 6]


def test_a_write_makes_the_parts_it_names_first(db_url: str) -> None:
    db = Database(db_url)
    try:
        from sutram_core.backends.sql.checkpoints import PARTS, SqlCheckpointStore

        store = SqlCheckpointStore(db)
        assert store.put_writes("t", "th", "", "c1", []) is True  # nothing to write: no schema work
        assert db._ready == frozenset()
        params = {"tenant_id": "t", "thread_id": "th", "checkpoint_ns": "", "checkpoint_id": "c1",
                  "guard_cid": "c1", "task_id": "task", "idx": 0, "channel": "ch", "type": "msgpack",
                  "data": b"\x01", "task_path": ""}
        assert db.write([Step(store._q_put_writes_keep, params)], parts=PARTS) == 1
        assert PARTS <= db._ready
    finally:
        db.close()


def test_a_write_refused_on_a_read_only_file(tmp_path: object) -> None:
    path = f"{tmp_path}/ro.db"
    rw = Database(f"sqlite:///{path}")
    try:
        _table(rw)
    finally:
        rw.close()
    db = Database(f"sqlite:///{path}?mode=ro")
    try:
        insert = db.prepare(text("INSERT INTO static_probe (k, v) VALUES (:k, :v)"))
        with pytest.raises(StorageError, match="read-only"):
            db.write([Step(insert, {"k": 1, "v": None})])
    finally:
        db.close()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM static_probe").fetchone() == (0,)


def _limit_writer(db: Database, extra_pages: int) -> None:
    """Cap the file the writers' kept connection may grow (SQLite's "database or disk is full")."""
    conn = db._write_conn
    assert conn is not None
    raw = conn.connection.driver_connection
    assert raw is not None
    pages = raw.execute("PRAGMA page_count").fetchone()[0]
    raw.execute(f"PRAGMA max_page_count = {pages + extra_pages}")


def test_a_full_disk_on_the_writers_connection_is_tried_again_on_another(tmp_path: object) -> None:
    with _probe(f"sqlite:///{tmp_path}/full.db") as (db, insert):
        assert db.write([Step(insert, {"k": 1, "v": b"small"})]) == 1
        _limit_writer(db, 0)
        # the big row does not fit on the capped connection: that transaction is rolled back,
        # the connection let go, and the general path writes it on a fresh one, once
        assert db.write([Step(insert, {"k": 2, "v": b"x" * 200_000}), Step(insert, {"k": 3, "v": b"y"})]) == 1
        assert _keys(db) == [1, 2, 3]


def test_a_disk_that_stays_full_ends_in_database_unavailable(tmp_path: object) -> None:
    with _probe(f"sqlite:///{tmp_path}/full.db", retry_seconds=0.2) as (db, insert):
        assert db.write([Step(insert, {"k": 1, "v": b"small"})]) == 1
        raw = db._write_conn.connection.driver_connection  # type: ignore[union-attr]
        pages = raw.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[union-attr]
        # every connection, the fresh ones the general path opens too, capped at this size
        from sqlalchemy import event

        @event.listens_for(db.engine, "connect")
        def _cap(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

        _limit_writer(db, 0)
        with pytest.raises(DatabaseUnavailableError, match="full"):
            db.write([Step(insert, {"k": 2, "v": b"y"}), Step(insert, {"k": 3, "v": b"x" * 200_000})])
        assert _keys(db) == [1]


def test_threads_writing_through_both_paths_lose_nothing(db_url: str) -> None:
    with _probe(db_url) as (db, insert):
        errors: list[BaseException] = []

        def writer(base: int) -> None:
            try:
                for i in range(60):
                    k = base + 2 * i
                    if i % 3:
                        db.write([Step(insert, {"k": k, "v": b"s"}), Step(insert, [{"k": k + 1, "v": b"m"}])])
                    else:
                        def plan(k: int = k) -> Plan[None]:
                            yield Step(insert, {"k": k, "v": b"p"})
                            yield Step(insert, {"k": k + 1, "v": b"p"})
                        db.run(plan())
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n * 1000,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert _keys(db) == sorted(n * 1000 + j for n in range(4) for j in range(120))


def test_a_locked_file_is_tried_no_more_often_than_by_the_general_path(tmp_path: object) -> None:
    """The fast path's attempt counts as the first one: with no time to retry, a file locked
    by another writer is tried once (a fallback that started over waited its lock twice)."""
    from sqlalchemy import event

    path = f"{tmp_path}/locked.db"
    db = Database(f"sqlite:///{path}", retry_seconds=0)
    begins: list[str] = []

    def _watch(dbapi_conn: sqlite3.Connection) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout = 100")
        dbapi_conn.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN IMMEDIATE") else None)

    event.listen(db.engine, "connect", lambda dbapi_conn, _record: _watch(dbapi_conn))
    try:
        _table(db)
        insert = db.prepare(text("INSERT INTO static_probe (k, v) VALUES (:k, :v)"))
        assert db.write([Step(insert, {"k": 1, "v": None})]) == 1
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            begins.clear()
            with pytest.raises(DatabaseUnavailableError, match="locked"):
                db.write([Step(insert, {"k": 2, "v": None})])
            assert len(begins) == 1
        finally:
            holder.rollback()
            holder.close()
        assert db.write([Step(insert, {"k": 2, "v": None})]) == 1
        assert _keys(db) == [1, 2]
    finally:
        db.close()
