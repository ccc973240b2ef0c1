"""Deletion sticks (langgraph 7206): late writes do not bring a deleted thread back."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from sutram_adapters.langgraph import SutramSaver
from sutram_core.backends.sql.schema import checkpoint_blobs
from tests.helpers import checkpoint, config, put


def test_late_put_writes_after_delete_thread_does_not_resurrect(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        stale = put(saver, "t1", {"messages": ["hi"]})
        saver.delete_thread("t1")
        saver.put_writes(stale, [("messages", "late")], "task-1")
        assert saver.get_tuple(config("t1")) is None
        assert saver.get_tuple(stale) is None
        assert list(saver.list(config("t1"))) == []


def test_late_put_of_a_checkpoint_made_before_delete_is_ignored(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        first = put(saver, "t1", {"x": 1})
        # a worker built this before the delete: a scalar (kept in the checkpoint's row) and a
        # list (a row of its own), so that both of the put's inserts meet the tombstone
        made_before = checkpoint({"x": 2, "items": [2]}, step=1)
        saver.delete_thread("t1")
        saver.put(config("t1", "", first["configurable"]["checkpoint_id"]), made_before, {"step": 1},
                  {"x": 1, "items": 1})
        assert saver.get_tuple(config("t1")) is None
        with saver.database.engine.connect() as conn:
            left = conn.execute(sa.select(sa.func.count()).select_from(checkpoint_blobs)
                                .where(checkpoint_blobs.c.thread_id == "t1")).scalar_one()
        assert left == 0


def test_thread_id_can_be_reused_by_a_new_run_after_delete(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        put(saver, "t1", {"x": 1})
        saver.delete_thread("t1")
        fresh = put(saver, "t1", {"x": 2})
        saver.put_writes(fresh, [("x", 3)], "task")
        t = saver.get_tuple(config("t1"))
        assert t is not None and t.checkpoint["channel_values"] == {"x": 2}
        assert [w[2] for w in t.pending_writes or []] == [3]


def test_async_late_writes_after_adelete_thread(db_url: str) -> None:
    async def scenario() -> None:
        async with SutramSaver.from_url(db_url) as saver:
            stale = await saver.aput(config("t9"), checkpoint({"x": 1}), {"step": 0}, {"x": 1})
            await saver.adelete_thread("t9")
            await asyncio.gather(*(saver.aput_writes(stale, [("x", i)], f"task-{i}") for i in range(5)))
            assert await saver.aget_tuple(config("t9")) is None

    asyncio.run(scenario())


def test_copy_onto_a_deleted_thread_id_lifts_the_tombstone(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        put(saver, "src", {"x": 1})
        put(saver, "dst", {"x": 0})
        saver.delete_thread("dst")
        saver.copy_thread("src", "dst")
        t = saver.get_tuple(config("dst"))
        assert t is not None and t.checkpoint["channel_values"] == {"x": 1}
