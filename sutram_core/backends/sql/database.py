"""Engines and the transaction driver shared by every SQL store.

Store logic is written as *plans*: generators that yield :class:`Step` objects (a
statement and its parameters) and receive each step's result. A plan does no I/O of its
own, so the same plan runs inside one transaction on SQLite or PostgreSQL, from sync
code or (through :meth:`Database.offload`) from async code.

Async methods run the sync path on a small thread pool owned by the database. That keeps
one implementation of every operation, and a store object works from any event loop
(async drivers bind their connections to the loop that opened them).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import Executable

from sutram_core.backends.sql import migrations
from sutram_core.config import DatabaseURL, parse_url
from sutram_core.errors import MissingDependencyError, StorageError

__all__ = ["Database", "Plan", "Step"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a plan. ``params`` is a dict, or a list of dicts for executemany.

    The plan receives the rows (a list of tuples) for a statement that returns rows, and
    the row count otherwise.
    """

    statement: Executable
    params: dict[str, Any] | list[dict[str, Any]] | None = None


Plan = Generator[Step, Any, T]


def _drive(plan: Plan[T], conn: Connection) -> T:
    try:
        step = next(plan)
        while True:
            result = conn.execute(step.statement, step.params)
            out: Any = result.all() if result.returns_rows else result.rowcount
            step = plan.send(out)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class Database:
    """A connection pool to one Sutram database, chosen by URL.

    >>> db = Database("sqlite:///.sutram/sutram.db")   # doctest: +SKIP
    >>> db.setup()                                     # doctest: +SKIP
    """

    def __init__(self, url: str | DatabaseURL | None = None, *, pool_size: int = 8) -> None:
        self.url = url if isinstance(url, DatabaseURL) else parse_url(url)
        self.backend = self.url.backend
        self.engine = self._create_engine(pool_size)
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="sutram-db")
        self._setup_lock = threading.Lock()
        self._ready = False

    def _create_engine(self, pool_size: int) -> Engine:
        if self.backend == "sqlite":
            assert self.url.path is not None
            self.url.path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                self.url.sqlalchemy_url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
            synchronous = self.url.options["synchronous"]

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # Take transaction control from the sqlite3 module (SQLAlchemy's recipe),
                # so that write transactions can start with BEGIN IMMEDIATE.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={synchronous}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                # A writer takes the write lock up front: a deferred transaction that
                # upgrades from read to write can fail with SQLITE_BUSY under contention.
                write = conn.get_execution_options().get("sutram_write", True)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

            return engine
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("psycopg", "postgres") from exc
        return create_engine(
            self.url.sqlalchemy_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )

    # -- running plans -------------------------------------------------------------

    def run(self, plan: Plan[T], *, write: bool = True) -> T:
        """Run ``plan`` in one transaction and return what it returns.

        Driver errors become :class:`StorageError`; Sutram's own errors pass through. On
        any error the transaction is rolled back: nothing is half-written.
        """
        self.setup()
        return self._run(plan, write)

    def _run(self, plan: Plan[T], write: bool) -> T:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(sutram_write=write)
                with conn.begin():
                    return _drive(plan, conn)
        except SQLAlchemyError as exc:
            raise StorageError(f"{self.backend} database error: {exc}") from exc
        finally:
            plan.close()

    async def offload(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn(*args, **kwargs)`` on this database's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # -- lifecycle -----------------------------------------------------------------

    def setup(self) -> int:
        """Create or upgrade the schema (idempotent); return the schema version."""
        if self._ready:
            return len(migrations.MIGRATIONS)
        with self._setup_lock:
            if not self._ready:
                try:
                    with self.engine.connect() as conn:
                        migrations.upgrade(conn)
                except SQLAlchemyError as exc:
                    raise StorageError(f"{self.backend} database error during setup: {exc}") from exc
                self._ready = True
        return len(migrations.MIGRATIONS)

    async def asetup(self) -> int:
        """Async twin of :meth:`setup`."""
        return await self.offload(self.setup)

    def close(self) -> None:
        """Close every pooled connection and stop the thread pool."""
        self._executor.shutdown(wait=True)
        self.engine.dispose()
