"""Database.run(single=True): a plan of one statement, which PostgreSQL runs without BEGIN
and COMMIT (the checkpointer's put and put_writes use it)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from sutram_core.backends.sql import checkpoints
from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.checkpoints.records import ChannelValue, CheckpointRecord, WriteRecord
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


@pytest.mark.parametrize("limit", [None, 1])  # 1: every put and put_writes takes the transaction of several statements
def test_checkpoint_writes_round_trip_whichever_way_they_are_sent(db_url: str, limit: int | None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every byte value survives, a value repeated within one put keeps the last one (as
    rows written one by one did), and a write repeated within one call keeps the first."""
    if limit is not None:
        monkeypatch.setattr(checkpoints, "_ONE_STATEMENT_BYTES", limit)
    db = Database(db_url)
    try:
        store = checkpoints.SqlCheckpointStore(db)
        every_byte = bytes(range(256)) * 3
        record = CheckpointRecord("ten", "t", "", "0001", None, None, "msgpack", b"\x00cp", "{}",
                                  {"a": "1", "b": "1", "e": "1"},
                                  [ChannelValue("a", "1", "bytes", every_byte), ChannelValue("b", "1", "bytes", b"first"),
                                   ChannelValue("b", "1", "bytes", b"last"), ChannelValue("e", "1", "empty", b"")])
        assert store.put(record)
        assert store.put_writes("ten", "t", "", "0001", [
            WriteRecord("task", 0, "a", "bytes", every_byte), WriteRecord("task", 1, "b", "bytes", b"kept"),
            WriteRecord("task", 1, "b", "bytes", b"dropped")])
        got = store.get("ten", "t", "", None)
        assert got is not None and got.checkpoint_id == "0001" and got.data == b"\x00cp"
        values = got.channel_values()
        assert values["a"] == ("bytes", every_byte) and values["b"] == ("bytes", b"last")
        assert [(w.idx, w.data) for w in got.writes] == [(0, every_byte), (1, b"kept")]
    finally:
        db.close()


def test_packed_rows_keep_odd_text_and_each_rows_own_bytes(db_url: str) -> None:
    """PostgreSQL sends a write's rows as JSON text columns and one string of bytes cut by
    offsets: names JSON must escape, and rows of every size next to each other, come back
    exactly (SQLite takes the same rows through executemany)."""
    odd = ["plain", 'quo"te', "back\\slash", "line\u2028sep", "emoji\U0001F600", '{"json": [1]}', "tab\tnl\n",
           "\u00e9\u4e2d", "", "null"]
    sizes = [0, 1, 100_000, 3, 0, 70_000, 2, 1, 5, 0]
    datas = [bytes((i + k) % 256 for k in range(n)) for i, n in enumerate(sizes)]
    db = Database(db_url)
    try:
        store = checkpoints.SqlCheckpointStore(db)
        values = [ChannelValue(name or "blank", f"v{i}", "bytes", data) for i, (name, data) in enumerate(zip(odd, datas, strict=True))]
        record = CheckpointRecord("ten", "t", "", "0001", None, None, "msgpack", b"cp", "{}",
                                  {v.channel: v.version for v in values}, values)
        assert store.put(record)
        writes = [WriteRecord(f"task{name}", i, name, "bytes", data, task_path=name)
                  for i, (name, data) in enumerate(zip(odd, datas, strict=True))]
        assert store.put_writes("ten", "t", "", "0001", writes)
        got = store.get("ten", "t", "", "0001")
        assert got is not None
        assert got.channel_values() == {v.channel: ("bytes", v.data) for v in values}
        assert sorted((w.task_id, w.idx, w.channel, w.data, w.task_path) for w in got.writes) == sorted(
            (w.task_id, w.idx, w.channel, w.data, w.task_path) for w in writes)
    finally:
        db.close()
