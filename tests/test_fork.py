"""A process forked from one that already used a saver (gunicorn --preload, Celery prefork,
multiprocessing's fork start): the child opens connections of its own and a thread pool of
its own; what it inherited is never used, so neither process loses or garbles the other's work."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from sutram_adapters.langgraph import SutramSaver
from tests.helpers import config, put

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _child(work: object) -> None:
    """Run ``work()`` in the forked child and leave with 0 only if it returned."""
    code = 1
    try:
        signal.alarm(60)  # a hang (a dead thread pool, a held lock) fails instead of blocking the suite
        work()  # type: ignore[operator]
        code = 0
    finally:
        os._exit(code)


def _checkpoints_on_disk(path: Path, pid: int) -> int:
    """Once the child ``pid`` has left (with 0), the checkpoints a new reader finds in ``path``."""
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return int(conn.execute("SELECT count(*) FROM sutram_checkpoints").fetchone()[0])
    finally:
        conn.close()


def test_a_process_forked_right_after_setup_keeps_every_write(tmp_path: Path) -> None:
    """setup() keeps its SQLite connection for the first statement; the fork closes it
    first (an inherited one made the parent's close delete the log under every one of the
    child's writes)."""
    path = tmp_path / "forked.db"
    saver = SutramSaver(f"sqlite:///{path}")
    saver.setup()
    closed_r, closed_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        def work() -> None:
            os.read(closed_r, 1)
            for i in range(40):
                put(saver, f"child-{i}", {"x": i})
        _child(work)
    saver.close()
    os.write(closed_w, b"x")
    assert _checkpoints_on_disk(path, pid) == 40


def test_a_child_forked_after_a_write_keeps_every_write_when_the_parent_closes(tmp_path: Path) -> None:
    """The child writes before and after the parent, which wrote again after the fork,
    closes its saver. A connection inherited by the child (kept open there, or used) made
    the child's own connections skip their file locks, and the parent's close deleted the
    log under the child's later writes (12 of 41 survived in the review's run)."""
    path = tmp_path / "forked.db"
    saver = SutramSaver(f"sqlite:///{path}")
    put(saver, "parent-0", {"x": 0})  # leaves an open connection in the saver's stack
    half_r, half_w = os.pipe()
    closed_r, closed_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        def work() -> None:
            for i in range(20):
                put(saver, f"child-{i}", {"x": i})
            os.write(half_w, b"x")
            os.read(closed_r, 1)  # the parent has closed its saver: its last connection
            for i in range(20, 40):
                put(saver, f"child-{i}", {"x": i})
        _child(work)
    os.read(half_r, 1)
    put(saver, "parent-1", {"x": 1})
    saver.close()
    os.write(closed_w, b"x")
    assert _checkpoints_on_disk(path, pid) == 42


def test_parent_and_forked_child_work_at_once_sync_and_async(db_url: str) -> None:
    """Both processes write and read through the saver made before the fork, at the same
    time; the child also through the async API (its thread pool is its own). On
    PostgreSQL a connection shared with the parent would interleave two conversations on
    one socket, or end the parent's session when the child exits."""
    with SutramSaver.from_url(db_url) as saver:
        put(saver, "before", {"x": -1})
        assert saver.get_tuple(config("before")) is not None
        pid = os.fork()
        if pid == 0:
            def work() -> None:
                for i in range(25):
                    put(saver, f"child-{i}", {"x": i})
                    got = saver.get_tuple(config(f"child-{i}"))
                    assert got is not None and got.checkpoint["channel_values"] == {"x": i}

                async def read() -> None:
                    for i in range(25):
                        got = await saver.aget_tuple(config(f"child-{i}"))
                        assert got is not None
                asyncio.run(read())
            _child(work)
        for i in range(25):
            put(saver, f"parent-{i}", {"x": i})
            got = saver.get_tuple(config(f"parent-{i}"))
            assert got is not None and got.checkpoint["channel_values"] == {"x": i}
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # after the child left, the parent's connections still serve it
        for who in ("parent", "child"):
            for i in range(25):
                got = saver.get_tuple(config(f"{who}-{i}"))
                assert got is not None and got.checkpoint["channel_values"] == {"x": i}
        assert asyncio.run(saver.aget_tuple(config("before"))) is not None


def _span(name: str) -> Any:
    from sutram_core.traces.spans import Span, SpanKind

    span = Span(span_id=uuid.uuid4(), run_id=uuid.uuid4(), parent_id=None, name=name, kind=SpanKind.LLM,
                tenant_id="default")
    span.finish()
    return span


def test_a_forked_child_writes_its_spans_on_a_writer_thread_of_its_own(tmp_path: Path) -> None:
    """The child's spans are written while it runs (no flush; it leaves with os._exit, as a
    multiprocessing or Celery child does), once each, and the parent's spans queued at the
    fork are the parent's to write, not the child's too."""
    from sutram_core.traces.tracer import Tracer

    path = tmp_path / "traces.db"
    tracer = Tracer.from_url(f"sqlite:///{path}", spool_dir=tmp_path / "spool", interval=0.05,
                             max_queue=50, max_block_seconds=5)
    tracer.end(_span("parent-before"))
    tracer.flush()
    tracer.end(_span("parent-queued"))  # still queued when the child is made
    pid = os.fork()
    if pid == 0:
        def work() -> None:
            for i in range(120):  # more than the queue holds: a child without a writer would block
                tracer.end(_span(f"child-{i}"))
            deadline = time.monotonic() + 20
            while tracer.stats.written < 120 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert tracer.stats.written == 120 and tracer.stats.dropped == 0, tracer.stats
        _child(work)
    tracer.close()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sutram_spans")]
    finally:
        conn.close()
    assert sorted(names) == sorted(["parent-before", "parent-queued", *(f"child-{i}" for i in range(120))])


def _ends_spans(tracer: Any, prefix: str) -> None:
    for i in range(20):
        tracer.end(_span(f"{prefix}-{i}"))


def test_multiprocessing_children_leave_with_their_spans_written(tmp_path: Path) -> None:
    """multiprocessing ends a child with os._exit after its own finalizers, not atexit: the
    child's last spans are written by then (they were all lost)."""
    import multiprocessing

    from sutram_core.traces.tracer import Tracer

    path = tmp_path / "traces.db"
    tracer = Tracer.from_url(f"sqlite:///{path}", spool_dir=tmp_path / "spool")
    tracer.end(_span("parent"))
    tracer.flush()
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_ends_spans, args=(tracer, f"child{k}")) for k in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    tracer.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM sutram_spans").fetchone()[0] == 61
    finally:
        conn.close()


def test_a_fork_in_the_middle_of_a_trace_batch_leaves_the_child_a_usable_file(tmp_path: Path) -> None:
    """The fork waits for the writer thread's batch: a SQLite file forked mid-write stayed
    locked for the child (SQLite cannot be carried across a fork)."""
    from sutram_core.traces.tracer import Tracer

    path = tmp_path / "traces.db"
    tracer = Tracer.from_url(f"sqlite:///{path}", spool_dir=tmp_path / "spool", max_queue=20_000)
    saver = SutramSaver(f"sqlite:///{path}")
    saver.setup()
    for i in range(3000):
        tracer.end(_span(f"parent-{i}"))
    deadline = time.monotonic() + 10
    while not tracer._writer._drain_lock.locked() and time.monotonic() < deadline:
        pass
    pid = os.fork()
    if pid == 0:
        def work() -> None:
            started = time.monotonic()
            put(saver, "child", {"x": 1})
            for i in range(10):
                tracer.end(_span(f"child-{i}"))
            tracer.flush()
            assert time.monotonic() - started < 10
        _child(work)
    tracer.close()
    saver.close()
    assert _checkpoints_on_disk(path, pid) == 1
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM sutram_spans").fetchone()[0] == 3010
    finally:
        conn.close()
