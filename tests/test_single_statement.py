"""Database.run(single=True): a plan of one statement, which PostgreSQL runs without BEGIN
and COMMIT (the checkpointer's put and put_writes use it)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.errors import StorageError


def _table(db: Database) -> None:
    def plan() -> Plan[None]:
        yield Step(text("CREATE TABLE single_probe (k INTEGER PRIMARY KEY)"))
    db.run(plan())


def _count(db: Database) -> int:
    def plan() -> Plan[int]:
        rows = yield Step(text("SELECT count(*) FROM single_probe"))
        return int(rows[0][0])
    return db.run(plan(), write=False)


def test_a_single_statement_plan_writes_and_returns_its_value(db_url: str) -> None:
    db = Database(db_url)
    try:
        _table(db)
        insert = db.prepare(text("INSERT INTO single_probe (k) VALUES (:k)"))

        def plan(k: int) -> Plan[int]:
            written = yield Step(insert, {"k": k})
            return int(written) * 10

        assert [db.run(plan(k), single=True) for k in (1, 2, 3)] == [10, 10, 10]
        assert _count(db) == 3
        # a failing statement leaves nothing behind and the connection usable
        with pytest.raises(StorageError):
            db.run(plan(2), single=True)
        assert db.run(plan(4), single=True) == 10
        assert _count(db) == 4
    finally:
        db.close()


def test_a_plan_that_asks_for_a_second_statement_is_refused(db_url: str) -> None:
    db = Database(db_url)
    try:
        _table(db)
        insert = db.prepare(text("INSERT INTO single_probe (k) VALUES (:k)"))

        def plan() -> Plan[Any]:
            yield Step(insert, {"k": 1})
            yield Step(insert, {"k": 2})

        with pytest.raises(RuntimeError, match="second statement"):
            db.run(plan(), single=True)
        # the second statement never ran (SQLite rolls the first back; PostgreSQL had
        # committed it, as a statement of its own)
        assert _count(db) == (1 if db.backend == "postgresql" else 0)
    finally:
        db.close()
