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
import contextlib
import functools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from sutram_core.backends.sql import migrations, schema, sqlite_readonly
from sutram_core.backends.sql.transient import is_transient
from sutram_core.config import DatabaseURL, parse_url
from sutram_core.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    MissingDependencyError,
    SchemaVersionError,
    StorageError,
)

__all__ = ["Database", "Plan", "Prepared", "Step"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a plan. ``params`` is a dict, or a list of dicts for executemany.

    The plan receives the rows (a list of tuples) for a statement that returns rows, and
    the row count otherwise.
    """

    statement: Executable | Prepared
    params: dict[str, Any] | list[dict[str, Any]] | None = None


Plan = Generator[Step, Any, T]
# PostgreSQL connections kept checked out for autocommit work: how many, and for how long idle
_AUTO_KEPT = 4
_AUTO_IDLE_SECONDS = 60.0

# Every open Database, for the fork handlers below.
_OPEN: weakref.WeakSet[Database] = weakref.WeakSet()
# PostgreSQL pools a forked child inherited: kept referenced and never used, so the child
# neither talks on the parent's sockets nor ends the parent's sessions.
_INHERITED: list[Any] = []


def _before_fork() -> None:
    # SQLite cannot be carried across a fork (its FAQ): a connection the child inherits
    # makes the child's own connections skip their file locks, and the parent's last close
    # then deletes the log under the child's writes. Idle connections are closed here and
    # reopened when next needed. One in use by another thread at the fork cannot be: forking
    # while another thread is inside a database call is not supported.
    for db in list(_OPEN):
        with contextlib.suppress(Exception):  # a hook that raises would stop the fork's others
            db._close_idle(timeout=1.0)


def _after_fork_in_child() -> None:
    for db in list(_OPEN):
        with contextlib.suppress(Exception):
            db._forget_parent()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


class Prepared:
    """A hot-path statement: built with SQLAlchemy Core, compiled once for the dialect,
    and executed on the DBAPI cursor, skipping SQLAlchemy's per-execute work (which
    costs more than a SQLite statement). Make one with :meth:`Database.prepare`.
    """

    __slots__ = ("_args", "binary", "defaults", "names", "returns_rows", "sql")

    def __init__(
        self, sql: str, names: tuple[str, ...] | None, returns_rows: bool, defaults: dict[str, Any],
        binary: bool = False,
    ) -> None:
        self.sql = sql
        self.names = names  # positional parameter order (qmark), or None for named
        self.returns_rows = returns_rows
        self.defaults = defaults  # values compiled into the statement, such as LIMIT 1
        # psycopg: fetch rows in binary format (bytea arrives as bytes, not as hex text)
        self.binary = binary
        # a parameter map to the driver's arguments: a tuple in ``names`` order, or the map
        self._args: Callable[[dict[str, Any]], Any] | None = None
        if names is not None and len(names) > 1:
            self._args = itemgetter(*names)
        elif names:
            only = names[0]
            self._args = lambda p: (p[only],)
        elif names is not None:
            self._args = lambda p: ()

    def run(self, conn: Connection, params: dict[str, Any] | list[dict[str, Any]] | None) -> Any:
        """Execute on ``conn``'s DBAPI cursor; rows for a query, the row count otherwise."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            return self.run_on(cursor, params)
        finally:
            cursor.close()

    def run_on(self, cursor: Any, params: dict[str, Any] | list[dict[str, Any]] | None) -> Any:
        """Execute on a DBAPI ``cursor``; rows for a query, the row count otherwise."""
        if self.defaults:
            if isinstance(params, list):
                params = [{**self.defaults, **p} for p in params]
            else:
                params = {**self.defaults, **(params or {})}
        to_args = self._args
        if isinstance(params, list):
            cursor.executemany(self.sql, params if to_args is None else list(map(to_args, params)))
            return cursor.rowcount
        args: Any = (params if to_args is None else to_args(params)) if params else ()
        if self.binary:
            cursor.execute(self.sql, args, binary=True)
        else:
            cursor.execute(self.sql, args)
        return cursor.fetchall() if self.returns_rows else cursor.rowcount


class _Progress:
    """Whether a plan has seen the result of a statement (then a failed transaction cannot
    simply be run again: the plan already acted on what it read)."""

    __slots__ = ("received",)

    def __init__(self) -> None:
        self.received = False


def _drive(plan: Plan[T], conn: Connection, step: Step, progress: _Progress) -> T:
    try:
        while True:
            statement = step.statement
            out: Any
            if isinstance(statement, Prepared):
                out = statement.run(conn, step.params)
            else:
                result = conn.execute(statement, step.params)
                out = result.all() if result.returns_rows else result.rowcount
            progress.received = True
            step = plan.send(out)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _in_transaction(conn: Connection, plan: Plan[T], step: Step, progress: _Progress, write: bool) -> T:
    """SQLite: run ``plan`` in a transaction begun and ended on the driver's connection.

    SQLAlchemy's begin and commit cost about as much as a small SQLite write. A statement
    the plan runs through SQLAlchemy (not :class:`Prepared`) joins the open transaction
    (``_on_begin`` begins none when one is open), and SQLAlchemy then ends it.
    """
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = _drive(plan, conn, step, progress)
        if conn.in_transaction():
            conn.commit()
        else:
            raw.commit()
        return result
    except BaseException:
        if conn.in_transaction():
            conn.rollback()
        if raw.in_transaction:
            raw.rollback()
        raise


def _autocommit(plan: Plan[T], conn: Connection, step: Step, progress: _Progress) -> T:
    """PostgreSQL: run ``plan`` on an autocommit connection, each statement atomic by itself
    (a read, or a plan of one statement; see ``Database.run``)."""
    result = _drive(plan, conn, step, progress)
    if conn.in_transaction():  # a statement run through SQLAlchemy began one (nothing is sent)
        conn.commit()
    return result


def _one_statement(plan: Plan[T]) -> Plan[T]:
    """``plan``, refused with RuntimeError if it asks for a second statement."""
    out = yield next(plan)
    try:
        plan.send(out)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    plan.close()
    raise RuntimeError("a plan run with single=True asked for a second statement")


def _static(steps: Sequence[Step]) -> Plan[Any]:
    """A plan of ``steps`` (none needs another's result) that returns the last one's result."""
    out = None
    for step in steps:
        out = yield step
    return out


def _static_transaction(conn: Connection, steps: Sequence[Step]) -> Any:
    """SQLite: ``steps`` (all :class:`Prepared`) in a write transaction begun and ended on
    the driver's connection; the last one's result. Rolled back on any error."""
    raw: Any = conn.connection.driver_connection
    raw.execute("BEGIN IMMEDIATE")
    try:
        cursor = raw.cursor()
        out = None
        for step in steps:
            out = step.statement.run_on(cursor, step.params)  # type: ignore[union-attr]
        cursor.close()
        raw.commit()
        return out
    except BaseException:
        if raw.in_transaction:
            raw.rollback()
        raise


# PostgreSQL refusing DDL: a read-only transaction (a replica, default_transaction_read_only),
# a role without CREATE on the schema
_CANNOT_CREATE = frozenset({"25006", "42501"})


class Database:
    """A connection pool to one Sutram database, chosen by URL.

    >>> db = Database("sqlite:///.sutram/sutram.db")   # doctest: +SKIP
    >>> db.setup()                                     # doctest: +SKIP
    """

    def __init__(self, url: str | DatabaseURL | None = None, *, pool_size: int = 8,
                 retry_seconds: float | None = None) -> None:
        self.url = url if isinstance(url, DatabaseURL) else parse_url(url)
        # how long a transaction whose first statement meets a transient error (server
        # restarting, connection dropped, file locked, disk full) is tried again before
        # DatabaseUnavailableError; see transient.py
        self.retry_seconds = float(os.environ.get("SUTRAM_DB_RETRY_SECONDS", "5") if retry_seconds is None
                                   else retry_seconds)
        self.backend = self.url.backend
        self.engine = self._create_engine(pool_size)
        # SQLite has one writer at a time: one database thread (as aiosqlite has) avoids
        # handing the write lock and the GIL back and forth between pool threads.
        workers = 1 if self.backend == "sqlite" else pool_size
        self._workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sutram-db")
        self._closed = False
        self._setup_lock = threading.Lock()
        self._ready: frozenset[str] = frozenset()  # the parts of the schema known to be made
        self._dbapi_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        self._read_engine = (
            self.engine if self.backend == "sqlite" else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._stack_lock = threading.Lock()
        self._writer = threading.Lock()
        # SQLite: open connections wait on a plain stack; taking one costs a list pop,
        # where SQLAlchemy's pool checkout costs about as much as a SQLite transaction.
        # PostgreSQL: transactions take a connection from SQLAlchemy's pool (see _auto).
        self._idle: list[Connection] | None = [] if self.backend == "sqlite" else None
        self._write_conn: Connection | None = None  # SQLite: the connection writers use (see _attempt)
        # PostgreSQL: reads and plans of one statement run in autocommit mode on connections
        # kept checked out between calls (the pool's checkout, checkin and switch of the
        # isolation level cost about half a loopback round trip per call); a few at most, so
        # that transactions always find the pool's others, and each idle for a minute at
        # most before it goes back to the pool (whose pool_recycle ends old sessions).
        self._auto: list[tuple[Connection, float]] = []
        self._auto_kept = min(_AUTO_KEPT, max(1, pool_size // 2))  # the pool holds 2 x pool_size
        self._generation = 0
        _OPEN.add(self)

    def _close_idle(self, timeout: float = -1) -> None:
        """SQLite: close the connections waiting on the stack (at close, and before a fork:
        there after at most ``timeout`` seconds of waiting for the stack, or not at all)."""
        if self._idle is None or not self._stack_lock.acquire(timeout=timeout):
            return
        try:
            idle, self._idle = self._idle, []
            if self._write_conn is not None:
                idle.append(self._write_conn)
                self._write_conn = None
        finally:
            self._stack_lock.release()
        for conn in idle:
            conn.close()

    def _forget_parent(self) -> None:
        """In a child just forked: fresh locks and thread pool (the parent's threads are not
        in the child, and a lock one of them held would stay held), and no connection of
        the parent's (the child opens its own)."""
        self._stack_lock = threading.Lock()
        self._writer = threading.Lock()
        self._setup_lock = threading.Lock()
        if not self._closed:  # a database closed in the parent stays closed to async calls
            _INHERITED.append(self._executor)  # its threads did not come along: never shut down
            self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="sutram-db")
        if self._idle is not None:
            self._idle = []  # the parent's were closed before the fork
            self._write_conn = None
        else:
            _INHERITED.append(self._auto)  # the parent's sessions: never used, never closed here
            self._auto = []
            _INHERITED.append(self.engine.pool)
            self.engine.dispose(close=False)  # a new, empty pool for the child

    def _create_engine(self, pool_size: int) -> Engine:
        if self.backend == "sqlite" and self.url.read_only:
            return sqlite_readonly.read_only_engine(self.url)  # creates, switches, writes nothing
        if self.backend == "sqlite":
            assert self.url.path is not None
            self.url.path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                self.url.sqlalchemy_url,
                connect_args={"check_same_thread": False, "timeout": 30},
                # Sutram keeps its own stack of open connections (see _run).
                poolclass=NullPool,
            )
            synchronous = self.url.options["synchronous"]

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # Take transaction control from the sqlite3 module (SQLAlchemy's recipe),
                # so that write transactions can start with BEGIN IMMEDIATE.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA busy_timeout=30000")
                # Switching a new file to WAL needs an exclusive lock, and SQLite answers
                # "database is locked" at once (no busy wait) when another connection opens
                # the same new file at that moment: try again for a while.
                for attempt in range(200):
                    try:
                        cur.execute("PRAGMA journal_mode=WAL")
                        break
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc) or attempt == 199:
                            raise
                        time.sleep(0.025)
                cur.execute(f"PRAGMA synchronous={synchronous}")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                # A writer takes the write lock up front: a deferred transaction that
                # upgrades from read to write can fail with SQLITE_BUSY under contention.
                raw = conn.connection.driver_connection
                if raw.in_transaction:  # type: ignore[union-attr]
                    return  # a statement joining the transaction _in_transaction began
                write = conn.info.get("sutram_write", True)
                raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # type: ignore[union-attr]

            return engine
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("psycopg", "postgres") from exc
        # No pre-ping: it costs a round trip per checkout; a dropped connection fails its
        # statement instead, and the pool discards it (pool_recycle bounds idle age).
        return create_engine(
            self.url.sqlalchemy_url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800
        )

    @property
    def read_only(self) -> bool:
        """True for a SQLite file opened with ``?mode=ro`` or ``?immutable=1``: reads only."""
        return self.url.read_only

    # -- running plans -------------------------------------------------------------

    def prepare(self, statement: Executable) -> Prepared | Executable:
        """Compile ``statement`` once for this database's dialect (see :class:`Prepared`).

        Statements with expanding parameters (``IN`` lists) are returned unchanged and run
        through SQLAlchemy as usual.
        """
        compiled = cast(SQLCompiler, cast(ClauseElement, statement).compile(dialect=self.engine.dialect))
        if any(getattr(bp, "expanding", False) for bp in compiled.binds.values()):
            return statement
        names = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup is not None else None
        returns_rows = bool(getattr(statement, "is_select", False) or getattr(statement, "_returning", ()))
        defaults = {
            name: bp.value for name, bp in compiled.binds.items() if not bp.required and bp.value is not None
        }
        binary = returns_rows and self.backend == "postgresql"
        return Prepared(compiled.string, names, returns_rows, defaults, binary)

    def run(self, plan: Plan[T], *, write: bool = True, single: bool = False,
            parts: frozenset[str] = schema.ALL_PARTS) -> T:
        """Run ``plan`` in one transaction and return what it returns.

        Driver errors become :class:`StorageError`; Sutram's own errors pass through. On
        any error the transaction is rolled back: nothing is half-written.

        ``single``: the plan runs exactly one :class:`Prepared` statement, atomic by itself.
        PostgreSQL then runs it without BEGIN and COMMIT (one round trip instead of three);
        a plan that tries a second statement is a programming error (the first is committed).

        ``parts``: the parts of the schema the plan uses (``schema.PARTS``), made first if
        missing; every part unless the caller knows better.
        """
        if not parts <= self._ready:
            self.setup(parts)
        if write and self.url.read_only:
            plan.close()
            raise sqlite_readonly.write_refused(self.url)
        return self._run(_one_statement(plan) if single else plan, write, single)

    def write(self, steps: Sequence[Step], *, parts: frozenset[str] = schema.ALL_PARTS) -> Any:
        """Run ``steps``, statements known up front (none needs another's result), in one
        write transaction and return the last one's result; the guarantees of :meth:`run`.

        SQLite runs prepared statements straight on the writers' connection: the plan
        machinery cost about a fifth of a small write (3 of 15 us). Anything else goes
        through :meth:`run`: a part of the schema to make, a read-only file, and a driver
        error (rolled back), which run() tries again when transient and types otherwise.
        """
        if (self._idle is not None and parts <= self._ready and not self.url.read_only
                and all(isinstance(step.statement, Prepared) for step in steps)):
            try:
                return self._as_writer(_static_transaction, steps)
            except (SQLAlchemyError, self._dbapi_error) as exc:
                if not is_transient(exc):
                    raise self._storage_error(exc) from exc
                # rolled back, nothing applied: tried again as run() tries a transaction whose
                # first attempt failed (so a locked file is waited for no longer than there)
                return self._run(_static(steps), True, failed=exc)
        return self.run(_static(steps), parts=parts)

    def _storage_error(self, exc: BaseException) -> StorageError:
        return StorageError(f"{self.backend} database error: {exc}")

    def _run(self, plan: Plan[T], write: bool, single: bool = False, failed: BaseException | None = None) -> T:
        """Run ``plan`` (see :meth:`run`); ``failed``: the transient error its first attempt,
        made elsewhere and rolled back, already met (the retries then start from there)."""
        try:
            try:
                step = next(plan)  # plans do no I/O: the first statement is known up front
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            deadline: float | None = None
            delay = 0.02
            received = False
            while True:
                if failed is None:
                    progress = _Progress()
                    try:
                        return self._attempt(plan, step, write, progress, single)
                    except PoolTimeout as exc:  # every connection of the pool busy for pool_timeout
                        raise DatabaseUnavailableError(
                            f"every connection of this database's pool stayed in use ({exc}); nothing of this "
                            "call was applied. Run fewer calls at once, or give the pool more "
                            "connections: Database(url, pool_size=...), passed as SutramSaver(database=...)"
                        ) from exc
                    except (SQLAlchemyError, self._dbapi_error) as exc:
                        if not is_transient(exc):
                            raise self._storage_error(exc) from exc
                        failed, received = exc, progress.received
                now = time.monotonic()
                deadline = now + self.retry_seconds if deadline is None else deadline
                if received or now + delay > deadline:
                    # after a statement's result reached the plan the transaction cannot be
                    # replayed here; the caller (the durable runner) retries the work
                    raise DatabaseUnavailableError(
                        f"{self.backend} database unavailable: {failed}. Nothing of this transaction was "
                        "applied unless the connection dropped while committing; try again later"
                    ) from failed
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                failed = None
        finally:
            plan.close()

    def _attempt(self, plan: Plan[T], step: Step, write: bool, progress: _Progress, single: bool = False) -> T:
        if self._idle is None:
            if single or not write:
                # PostgreSQL reads run without BEGIN/COMMIT: at READ COMMITTED every statement
                # takes its own snapshot anyway, so the transaction only cost two round trips
                return self._in_autocommit(plan, step, progress)
            with self.engine.connect() as conn:
                try:
                    with conn.begin():
                        return _drive(plan, conn, step, progress)
                except self._dbapi_error:
                    conn.invalidate()  # a raw DBAPI failure may leave the session unusable
                    raise
        if write:
            # Writers of this process queue on a lock: two BEGIN IMMEDIATE in one process
            # would otherwise meet in SQLite's busy handler, which sleeps for milliseconds
            # (other processes still wait through busy_timeout). They also write through one
            # connection: SQLite empties a connection's page cache whenever another one has
            # written, so writes alternating between two connections (LangGraph's put and
            # put_writes come from different threads) read their pages from the file again
            # every time (16 reads of the file a step of a small graph; served from the OS's
            # cache here, they cost about 3% of the step).
            result: T = self._as_writer(_in_transaction, plan, step, progress, True)
            return result
        conn = self._take()
        ok = False
        try:
            conn.info["sutram_write"] = False
            result = _in_transaction(conn, plan, step, progress, False)
            ok = True
            return result
        finally:
            self._give_back(conn, ok)

    def _as_writer(self, body: Callable[..., T], *args: Any) -> T:
        """SQLite: ``body(conn, *args)`` as this process's one writer, on the writers' kept
        connection (see :meth:`_attempt`)."""
        with self._writer:
            with self._stack_lock:
                conn, self._write_conn = self._write_conn, None
            if conn is None:
                conn = self._take()
            ok = False
            try:
                conn.info["sutram_write"] = True
                result = body(conn, *args)
                ok = True
                return result
            finally:
                self._give_back(conn, ok, writer=True)

    def _take(self) -> Connection:
        with self._stack_lock:
            if self._idle:
                return self._idle.pop()
        return self.engine.connect()

    def _give_back(self, conn: Connection, healthy: bool, writer: bool = False) -> None:
        if healthy and not conn.invalidated:
            with self._stack_lock:
                if self._idle is not None:
                    if writer and self._write_conn is None:
                        self._write_conn = conn  # for the next writer (see _attempt)
                    else:
                        self._idle.append(conn)
                    return
        conn.close()

    def _in_autocommit(self, plan: Plan[T], step: Step, progress: _Progress) -> T:
        generation = self._generation  # sessions let go meanwhile (drop_sessions) are not kept
        conn = self._take_auto()
        ok = False
        try:
            result = _autocommit(plan, conn, step, progress)
            ok = True
            return result
        except (SQLAlchemyError, self._dbapi_error) as exc:
            if not isinstance(exc, SQLAlchemyError):
                conn.invalidate()  # a raw DBAPI failure may leave the session unusable
            if is_transient(exc):
                self._drop_auto()  # the server may have gone: the kept sessions with it
            raise
        finally:
            self._give_back_auto(conn, ok and generation == self._generation)

    def _take_auto(self) -> Connection:
        now = time.monotonic()
        stale = []
        conn = None
        with self._stack_lock:
            while self._auto:
                kept, since = self._auto.pop()
                if now - since < _AUTO_IDLE_SECONDS:
                    conn = kept
                    break
                stale.append(kept)
        for old in stale:  # idle too long: back to the pool, whose pool_recycle ends old sessions
            old.close()
        return conn if conn is not None else self._read_engine.connect()

    def _give_back_auto(self, conn: Connection, healthy: bool) -> None:
        if healthy and not conn.invalidated and not self._closed:
            with self._stack_lock:
                if len(self._auto) < self._auto_kept:
                    self._auto.append((conn, time.monotonic()))
                    return
        conn.close()

    def drop_sessions(self) -> None:
        """PostgreSQL: let go of every open session (kept and pooled; one in use is discarded
        when given back), so that what a new "connect" hook sets applies to every later call."""
        if self._idle is None:
            self._generation += 1
            self._drop_auto()
            self.engine.dispose()

    def _drop_auto(self) -> None:
        with self._stack_lock:
            kept, self._auto = self._auto, []
        for conn, _ in kept:
            with contextlib.suppress(Exception):  # a dead session is discarded by the pool
                conn.close()

    async def offload(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn(*args, **kwargs)`` on this database's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # -- lifecycle -----------------------------------------------------------------

    def setup(self, parts: frozenset[str] = schema.ALL_PARTS) -> int:
        """Create or upgrade the schema (idempotent), making ``parts`` of it (every part by
        default; see ``schema.PARTS``) if missing; return the schema version."""
        if parts <= self._ready:
            return len(migrations.MIGRATIONS)
        if not parts <= schema.ALL_PARTS:
            raise ConfigurationError(f"no part of Sutram's schema is named {sorted(parts - schema.ALL_PARTS)}; "
                                     f"the parts are {sorted(schema.ALL_PARTS)}")
        with self._setup_lock:
            deadline: float | None = None
            delay = 0.05
            while not parts <= self._ready:
                try:
                    # A SQLite connection is kept on the stack of idle ones, for the first
                    # statement: closing the last connection of a file checkpoints its WAL,
                    # which cost a new database's setup() more than its DDL. A process forked
                    # after setup() still opens its own (the fork hook closes idle ones: an
                    # inherited one shares the parent's WAL without holding its file locks).
                    conn = self.engine.connect()
                    ok = False
                    try:
                        if self.url.read_only:
                            sqlite_readonly.check_schema(conn, self.url)
                            parts = schema.ALL_PARTS  # those missing read as empty (check_schema)
                        else:
                            migrations.upgrade(conn, parts=parts)  # each step in its own transaction: safe to redo
                        raw = conn.connection.driver_connection
                        ok = not conn.in_transaction() and not getattr(raw, "in_transaction", False)
                    finally:
                        self._give_back(conn, ok)
                    self._ready |= parts
                except (SQLAlchemyError, self._dbapi_error) as exc:  # the new-database DDL runs on the driver
                    # a server restarting as the app starts is waited for, as any transaction is
                    now = time.monotonic()
                    deadline = now + self.retry_seconds if deadline is None else deadline
                    if getattr(getattr(exc, "orig", exc), "sqlstate", None) in _CANNOT_CREATE:
                        raise SchemaVersionError(
                            f"the database lacks tables of Sutram's schema this call needs, and this PostgreSQL "
                            f"session cannot create them ({exc}). A saver makes only the checkpoint tables; the "
                            "others are made when a tracer, memory store or durable runner first opens the "
                            "database. Open it once where tables can be made (on the primary, with a role that may "
                            "create tables in its schema): any Sutram store does, e.g. `sutram runs --url ...`, "
                            "or Database(url).setup()") from exc
                    if not is_transient(exc) or now + delay > deadline:
                        kind = DatabaseUnavailableError if is_transient(exc) else StorageError
                        raise kind(f"{self.backend} database error during setup: {exc}") from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
        return len(migrations.MIGRATIONS)

    async def asetup(self, parts: frozenset[str] = schema.ALL_PARTS) -> int:
        """Async twin of :meth:`setup`."""
        return await self.offload(self.setup, parts)

    def close(self) -> None:
        """Close every pooled connection and stop the thread pool."""
        self._closed = True
        self._executor.shutdown(wait=True)
        self._close_idle()  # the engine stays usable: closing only releases connections
        self._drop_auto()
        self.engine.dispose()
