"""Fault injection: a database that goes away and comes back, a SQLite file another
process holds locked, a trace database that never answers. Runs complete or pause (then
complete), nothing is left 'running' by a live process, no span is lost or stored twice
while the spool has room, and the app is never blocked past the tracer's bound."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from sutram_adapters.langgraph.durable import durable
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.runs import SqlRunLedger
from sutram_core.errors import DatabaseUnavailableError, InvalidRunError, RunPausedError
from sutram_core.runs import Budget, RunStatus
from sutram_core.traces import open_trace_store
from sutram_core.traces.spans import Span, SpanKind
from sutram_core.traces.tracer import Tracer
from tests.conftest import PG_URL
from tests.durable_graph import LoggedModel

ROOT = Path(__file__).resolve().parent.parent


class Steps(TypedDict):
    n: int
    answers: list[str]


def _step(state: Steps) -> dict[str, Any]:
    time.sleep(0.15)  # long enough for an outage to fall inside the run
    reply = LoggedModel().invoke(f"step {state['n']}")
    return {"n": state["n"] + 1, "answers": [*state["answers"], str(reply.content)]}


def _graph(nodes: int = 12) -> Any:
    builder = StateGraph(Steps)
    names = [f"s{i}" for i in range(nodes)]
    for name in names:
        builder.add_node(name, _step)
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile()


def _watch_spans(runner: Any) -> list[str]:
    """The ids of the spans the runner's tracer is handed (observed, not replaced)."""
    tracer = runner.tracer.tracer
    emitted: list[str] = []
    end = tracer.end

    def observed(span: Span) -> None:
        emitted.append(str(span.span_id))
        end(span)

    tracer.end = observed
    return emitted


def _finish(runner: Any, run_id: str) -> None:
    try:
        runner.invoke({"n": 0, "answers": []}, thread_id=f"t-{run_id}", run_id=run_id)
    except RunPausedError:  # the outage outlasted the retries: resume once it is over
        runner.resume(run_id)


def _stored_span_ids(url: str, tenant: str = "default") -> list[str]:
    with open_trace_store(url) as store:
        runs = store.runs(tenant, limit=1000)
        return [str(s.span_id) for r in runs for s in store.run_spans(tenant, r.run_id)]


# -- item 8: a refused resume changes nothing ------------------------------------------------

def test_resume_of_a_run_live_elsewhere_changes_nothing(db_url: str, calls: Path) -> None:
    ledger = SqlRunLedger(Database(db_url))
    ledger.create("default", "r-live", thread_id="t-live", executor="other-worker", lease_seconds=300,
                  budget=Budget(max_tokens=10))
    with durable(_graph(2), url=db_url) as runner:
        with pytest.raises(InvalidRunError, match="running elsewhere"):
            runner.resume("r-live", budget=Budget(max_tokens=1_000_000))
    run = ledger.get("default", "r-live")
    assert run.budget == Budget(max_tokens=10)
    assert (run.status, run.executor_id, run.fence, run.attempts) == (RunStatus.RUNNING, "other-worker", 1, 1)
    ledger.db.close()


# -- SQLite locked by another process ------------------------------------------------------

def test_sqlite_locked_by_another_process_for_seconds_delays_the_run_but_loses_nothing(
        tmp_path: Path, calls: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    with durable(_graph(4), url=url) as runner:
        runner.invoke({"n": 0, "answers": []}, thread_id="warm-up", run_id="warm-up")
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(tmp_path / 'locked.db')!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(4); c.execute('COMMIT')\n"
        )], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        out = runner.invoke({"n": 0, "answers": []}, thread_id="t-locked", run_id="r-locked")
        waited = time.monotonic() - started
        holder.wait(timeout=30)
        assert out["n"] == 4 and waited >= 3.0  # it waited for the lock, then went on
        assert runner.ledger.get("default", "r-locked").status == RunStatus.COMPLETED
    assert len(calls.read_text().splitlines()) == 8  # 4 + 4 model calls, none repeated


# -- the trace database unreachable for longer than the spool holds -------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _span(i: int) -> Span:
    span = Span(span_id=uuid.uuid4(), run_id=uuid.uuid4(), parent_id=None, name=f"llm-{i}", kind=SpanKind.LLM,
                tenant_id="default", inputs="x" * 200)
    span.finish()
    return span


@pytest.mark.postgres
def test_trace_database_unreachable_spools_then_drops_counted_without_blocking_the_app(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    caplog.set_level(logging.WARNING, logger="sutram.traces")
    tracer = Tracer.from_url(url, spool_dir=tmp_path / "spool", spool_bytes=100_000, max_queue=200,
                             max_block_seconds=0.5, batch_size=50, interval=0.05)
    try:
        started = time.monotonic()
        for i in range(3000):
            tracer.end(_span(i))
        submitting = time.monotonic() - started
        tracer._writer.flush()
    finally:
        tracer._writer._closed = True  # no final flush attempt against a server that is not there
    stats = tracer.stats
    assert submitting < 0.5 * 3000 / 200 + 2  # never longer than the bound per full queue
    assert stats.spooled > 0 and stats.dropped > 0
    assert stats.spooled + stats.dropped == 3000  # every span kept or counted, none written
    assert any("dropping spans" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "spool").is_dir() and sum(p.stat().st_size for p in (tmp_path / "spool").glob("*.spool")) <= 100_000


# -- PostgreSQL stopped and restarted during a durable run ----------------------------------

@pytest.fixture(scope="module")
def own_pg() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL server of this module's own, which the tests may stop and restart."""
    if not PG_URL:
        pytest.skip("SUTRAM_TEST_PG_URL is not set: run the suite with `make test`")
    sys.path.insert(0, str(ROOT / "integrations" / "postgres"))
    import testserver  # type: ignore[import-not-found]

    # not under pytest's folder: the server runs as an unprivileged user who must reach it
    state = Path(tempfile.mkdtemp(prefix="sutram-pg-restart-"))
    url = testserver.start(state)
    try:
        yield url, state
    finally:
        testserver.stop(state)


def _restart(state: Path, down_seconds: float) -> None:
    import testserver

    testserver.halt(state)
    time.sleep(down_seconds)
    testserver.start(state)


@pytest.mark.postgres
@pytest.mark.parametrize("down_seconds", [1.0, 6.0])
def test_postgres_restart_mid_run_completes_every_call_once_every_span_once(
        own_pg: tuple[str, Path], calls: Path, down_seconds: float) -> None:
    base, state = own_pg
    schema = f"f_{uuid.uuid4().hex[:10]}"
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    from tests.conftest import _pg_schema_url

    url = _pg_schema_url(base, schema)
    nodes = 12
    with durable(_graph(nodes), url=url, backoff_seconds=0.5, lease_seconds=30) as runner:
        emitted = _watch_spans(runner)
        runner.ledger.db.setup()  # the schema first: the outage is meant to fall mid-run
        outage = threading.Timer(0.6, _restart, (state, down_seconds))
        outage.start()
        try:
            _finish(runner, "r-restart")
        finally:
            outage.join()  # the server is back before the next test, whatever happened here
        run = runner.ledger.get("default", "r-restart")
        assert run.status == RunStatus.COMPLETED
        assert runner.graph.get_state({"configurable": {"thread_id": "t-r-restart"}}).values["n"] == nodes
        runner.tracer.tracer.flush()
        assert runner.ledger.runs("default", status="running") == []
    made = calls.read_text().splitlines()
    # each call reached the model once, also past the 5-s retry window of one statement: a
    # call whose journal entry met the outage holds its paid result until the database is back
    assert sorted(made) == sorted(f"step {i}" for i in range(nodes))
    stored = _stored_span_ids(url)
    assert len(stored) == len(set(stored)) and set(stored) == set(emitted)


class _ModelThenOutage(LoggedModel):
    """A model whose answer comes back just as the database goes away (for longer than one
    statement's 5-s retry window): the journal entry of a paid call meets the outage."""

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        result = super()._generate(messages, stop, run_manager, **kwargs)
        if _OUTAGE:
            import testserver

            state = _OUTAGE.pop()  # once
            testserver.halt(state)
            restart = threading.Timer(7.0, testserver.start, (state,))
            _RESTARTS.append(restart)
            restart.start()
        return result


_OUTAGE: list[Path] = []
_RESTARTS: list[threading.Timer] = []


@pytest.mark.postgres
def test_a_paid_call_whose_journal_write_meets_an_outage_is_not_made_again(
        own_pg: tuple[str, Path], calls: Path) -> None:
    base, state = own_pg
    _OUTAGE[:] = [state]

    def ask(s: Steps) -> dict[str, Any]:
        reply = _ModelThenOutage().invoke(f"step {s['n']}")
        return {"n": s["n"] + 1, "answers": [*s["answers"], str(reply.content)]}

    builder = StateGraph(Steps)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    started = time.monotonic()
    try:
        with durable(builder.compile(), url=base, backoff_seconds=0.5, lease_seconds=30) as runner:
            runner.ledger.db.setup()
            run_id = f"r-hold-{uuid.uuid4().hex[:6]}"
            _finish(runner, run_id)
            assert runner.ledger.get("default", run_id).status == RunStatus.COMPLETED
    finally:
        for restart in _RESTARTS:  # the server is back before the next test, whatever happened here
            restart.join()
        _RESTARTS.clear()
    assert time.monotonic() - started >= 7.0  # the outage did fall on the journal write
    assert calls.read_text().splitlines() == ["step 0"]


@pytest.mark.postgres
def test_checkpointer_and_memory_store_work_after_a_restart_without_a_new_object(
        own_pg: tuple[str, Path]) -> None:
    from sutram_adapters.langgraph import SutramSaver
    from sutram_core.memory import MemoryStore
    from tests.helpers import config, put

    base, state = own_pg
    with SutramSaver.from_url(base) as saver, MemoryStore.from_url(base, tenant="acme") as memory:
        put(saver, "t-before", {"x": 1})
        memory.put(("prefs",), "k", {"text": "tea"})
        _restart(state, 0.5)
        assert saver.get_tuple(config("t-before")) is not None
        assert memory.get(("prefs",), "k") is not None
        put(saver, "t-after", {"x": 2})


def test_transient_classification_names_what_a_retry_can_fix() -> None:
    from sutram_core.backends.sql.transient import is_transient

    assert is_transient(sqlite3.OperationalError("database or disk is full"))
    assert is_transient(sqlite3.OperationalError("database is locked"))
    assert not is_transient(sqlite3.OperationalError("no such table: x"))
    assert not is_transient(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert os.environ.get("SUTRAM_DB_RETRY_SECONDS") in (None, "5")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs: a disk that can be filled up and freed again (room enough, once freed,
    for the database and a WAL file that grows to 4 MiB between checkpoints)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(ballast: Path) -> None:
    """Write zeros to ``ballast`` until the disk is full. Unbuffered: a buffered file would
    raise ENOSPC again from its close, flushing the part of the last block that did not fit."""
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_for_two_seconds_delays_the_run_but_never_fails_it(small_disk: Path, calls: Path) -> None:
    url = f"sqlite:///{small_disk / 'sutram.db'}"
    nodes = 6
    with durable(_graph(nodes), url=url, backoff_seconds=0.5) as runner:
        runner.invoke({"n": 0, "answers": []}, thread_id="warm", run_id="warm")
        ballast = small_disk / "ballast"
        full: list[bool] = []

        def outage() -> None:  # the disk fills mid-run and is freed 2 s later
            time.sleep(0.4)
            try:
                _fill(ballast)
                full.append(os.statvfs(small_disk).f_bavail == 0)
                time.sleep(2.0)
            finally:
                ballast.unlink(missing_ok=True)

        freed = threading.Thread(target=outage)
        freed.start()
        started = time.monotonic()
        _finish(runner, "r-full")
        freed.join()
        assert full == [True] and time.monotonic() - started >= 2.0  # it did meet the full disk
        run = runner.ledger.get("default", "r-full")
        assert run.status == RunStatus.COMPLETED and run.error is None
        assert runner.graph.get_state({"configurable": {"thread_id": "t-r-full"}}).values["n"] == nodes
    made = calls.read_text().splitlines()
    # a call whose journal entry could not be written is made again (the disk was full)
    assert set(made) == {f"step {i}" for i in range(nodes)}


def test_the_spool_keeps_order_survives_its_writer_and_is_private(tmp_path: Path) -> None:
    from sutram_core.traces.spool import SpanSpool

    first = SpanSpool(tmp_path / "spool", max_bytes=1 << 20)
    assert first.append([{"span_id": "a"}]) and first.append([{"span_id": "b"}])
    (own,) = (tmp_path / "spool").glob("*.spool")
    assert own.stat().st_mode & 0o077 == 0  # prompts and answers: this user only
    # a spool whose process died is adopted by the next one (a pid that is not running)
    own.rename(own.with_name(f"{2**22 + 7}-dead.spool"))
    second = SpanSpool(tmp_path / "spool", max_bytes=1 << 20)
    assert second.append([{"span_id": "c"}])
    written: list[str] = []

    def flaky(rows: list[dict[str, Any]]) -> None:
        if rows[0]["span_id"] == "b" and "b" not in written and len(written) == 1:
            written.append("fail")
            raise DatabaseUnavailableError("down again")
        written.extend(r["span_id"] for r in rows)

    with pytest.raises(DatabaseUnavailableError):
        second.replay(flaky)
    assert second.pending_bytes > 0
    second.replay(flaky)
    assert [w for w in written if w != "fail"] == ["a", "b", "c"] and second.pending_bytes == 0


@pytest.mark.postgres
def test_a_server_still_starting_when_the_app_starts_is_waited_for(own_pg: tuple[str, Path]) -> None:
    import testserver

    base, state = own_pg
    testserver.halt(state)
    back = threading.Timer(2.0, testserver.start, (state,))
    back.start()
    started = time.monotonic()
    try:
        db = Database(base)
        assert db.setup() > 0  # the schema is there once the server is: no error to the app
        assert time.monotonic() - started >= 1.5
        db.close()
    finally:
        back.join()
