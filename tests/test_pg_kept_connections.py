"""PostgreSQL: reads and one-statement writes run on autocommit connections the database
keeps checked out between calls (the pool's checkout and checkin cost about half a round
trip). A kept connection must never starve a transaction of the pool, must not outlive its
idle limit, and one the server has ended must cost a retry, never an error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, text

from sutram_core.backends.sql import database
from sutram_core.backends.sql.database import Database, Plan, Step
from tests.conftest import make_url


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from make_url("postgresql", tmp_path)


def _pid(db: Database) -> int:
    def plan() -> Plan[int]:
        rows = yield Step(text("SELECT pg_backend_pid()"))
        return int(rows[0][0])
    return db.run(plan(), write=False)


def _write_two(db: Database, k: int) -> None:
    """A transaction of two statements (not autocommit work)."""
    def plan() -> Plan[None]:
        yield Step(text("INSERT INTO kept_probe (k) VALUES (:k)"), {"k": k})
        yield Step(text("INSERT INTO kept_probe (k) VALUES (:k)"), {"k": -k})
    db.run(plan())


def test_a_read_reuses_the_connection_the_last_one_kept(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        assert _pid(db) == _pid(db) == _pid(db)
    finally:
        db.close()


def test_a_connection_idle_past_its_limit_goes_back_to_the_pool(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept, a connection skips the pool's checkout, where pool_recycle ends old sessions:
    one idle past the limit is checked in and the next read checks one out again."""
    monkeypatch.setattr(database, "_AUTO_IDLE_SECONDS", 0.5)
    db = Database(pg_url)
    db.setup()  # its own checkout
    checkouts: list[object] = []
    event.listen(db.engine.pool, "checkout", lambda *args: checkouts.append(args))
    try:
        _pid(db)
        _pid(db)
        assert len(checkouts) == 1  # kept between the two
        time.sleep(0.8)
        _pid(db)
        assert len(checkouts) == 2 and db.engine.pool.checkedout() == 1
    finally:
        db.close()


def test_kept_connections_leave_the_pool_to_transactions(pg_url: str) -> None:
    """pool_size=1 holds two connections; many reads at once must not keep both, or the
    two-statement write would wait out the pool's timeout."""
    db = Database(pg_url, pool_size=1)
    try:
        db.run(_once(text("CREATE TABLE kept_probe (k INTEGER PRIMARY KEY)")))
        barrier = threading.Barrier(2)

        def reader() -> None:
            barrier.wait()
            for _ in range(20):
                _pid(db)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(db._auto) <= 1
        done = threading.Event()

        def writer() -> None:
            _write_two(db, 7)
            done.set()

        w = threading.Thread(target=writer, daemon=True)
        w.start()
        assert done.wait(10), "a transaction waited on the pool behind kept connections"
    finally:
        db.close()


def _once(statement: object) -> Plan[None]:
    yield Step(statement)  # type: ignore[arg-type]


def test_a_kept_connection_the_server_ended_costs_a_retry_not_an_error(pg_url: str) -> None:
    db = Database(pg_url)
    other = Database(pg_url)
    try:
        kept = _pid(db)
        other.run(_once(text(f"SELECT pg_terminate_backend({kept})")))
        _wait_until_ended(other, kept)
        assert _pid(db) != kept  # the dead one was dropped and the read ran on a new one
        assert db._auto and all(not c.invalidated for c, _ in db._auto)
    finally:
        db.close()
        other.close()


def test_close_returns_the_kept_connections(pg_url: str) -> None:
    db = Database(pg_url)
    other = Database(pg_url)
    try:
        kept = _pid(db)
        db.close()
        assert _wait_until_ended(other, kept)
    finally:
        other.close()


def _wait_until_ended(db: Database, pid: int) -> bool:
    """Whether the server session ``pid`` ended within 10 s (a session lingers a moment in
    pg_stat_activity after its client hung up or it was told to end, longer under load)."""
    def sessions() -> Plan[int]:
        rows = yield Step(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid})
        return int(rows[0][0])
    deadline = time.monotonic() + 10
    while db.run(sessions(), write=False) and time.monotonic() < deadline:
        time.sleep(0.05)
    return db.run(sessions(), write=False) == 0


def test_a_memory_backend_attached_later_gets_its_settings_on_every_session(pg_url: str) -> None:
    """A saver used the Database first: its kept and pooled sessions lack what the memory
    backend's connect hook sets (custom plans for the vector index, ef_search); the backend
    lets them go, so its searches never run on one."""
    from sutram_core.backends.sql.memory import SqlMemoryBackend

    db = Database(pg_url, pool_size=4)
    try:
        held = [db.engine.connect() for _ in range(2)]  # pooled sessions opened before the hook
        for conn in held:
            conn.close()
        _pid(db)
        _pid(db)
        assert db._auto  # a kept session without the settings
        backend = SqlMemoryBackend(db)

        def setting() -> Plan[str]:
            rows = yield Step(text("SELECT current_setting('plan_cache_mode')"))
            return str(rows[0][0])

        seen = set()
        for _ in range(6):
            seen.add(db.run(setting(), write=False))
            with db.engine.connect() as conn:  # a pooled one, as a transaction would take
                seen.add(str(conn.execute(text("SELECT current_setting('plan_cache_mode')")).scalar()))
        assert seen == {"force_custom_plan"}
        backend.close()
    finally:
        db.close()


def test_a_pool_busy_past_its_timeout_is_a_typed_error_that_says_what_to_do(pg_url: str) -> None:
    """Every connection of the pool in use for the pool's timeout: the call fails with
    DatabaseUnavailableError (try again later) naming the pool, and applies nothing."""
    from sutram_core.errors import DatabaseUnavailableError

    db = Database(pg_url, pool_size=1)
    try:
        db.run(_once(text("CREATE TABLE kept_probe (k INTEGER PRIMARY KEY)")))
        db._drop_auto()
        db.engine.pool._timeout = 0.3  # type: ignore[attr-defined]  # the default is 30 s
        held = [db.engine.connect() for _ in range(2)]  # pool_size 1 + overflow 1
        try:
            for call in (lambda: _write_two(db, 5), lambda: _pid(db)):
                with pytest.raises(DatabaseUnavailableError, match="pool_size"):
                    call()
        finally:
            for conn in held:
                conn.close()

        def count() -> Plan[int]:
            rows = yield Step(text("SELECT count(*) FROM kept_probe"))
            return int(rows[0][0])
        assert db.run(count(), write=False) == 0  # nothing half-written
    finally:
        db.close()
