"""Reading a SQLite database without writing to it: ``?mode=ro`` and ``?immutable=1``.

A database copied to a read-only filesystem (a container layer, a backup mount, evidence
kept for an audit) can still be inspected::

    sqlite:///path/db.sqlite?mode=ro        read-only; other processes may still write it
    sqlite:///path/db.sqlite?immutable=1    read-only, and the file cannot change while open

Opening it read-only creates nothing (no folder, no file), switches no journal mode and
runs no migration; the schema must be the one this Sutram writes. An older schema is
refused with :class:`~sutram_core.errors.SchemaVersionError`: open the database once
writable to upgrade it. Every read works (checkpoints, memory, runs, traces, the audit
chain); every write raises :class:`~sutram_core.errors.StorageError` saying the database
was opened read-only, before any statement runs.

WAL files. Sutram keeps SQLite in WAL mode: recent commits sit in ``db.sqlite-wal``
until a checkpoint moves them into the file, and readers share an index in
``db.sqlite-shm``. Where neither can be created (a read-only folder or filesystem),
SQLite cannot open a WAL-mode file for reading at all, so Sutram opens it as immutable
(the file is all there is) when no ``-wal`` with commits is beside it. An operator
copying a database for reading should therefore either

- run ``PRAGMA wal_checkpoint(TRUNCATE)`` on it (``sqlite3 db.sqlite "PRAGMA
  wal_checkpoint(TRUNCATE)"``; it waits for readers, not for writers) and copy the file
  alone, or
- copy the file together with its ``-wal`` and ``-shm`` files, taken at one moment (a
  filesystem snapshot), or use ``sqlite3 db.sqlite ".backup copy.sqlite"``.

A ``-wal`` holding commits without a ``-shm`` is refused with a
:class:`~sutram_core.errors.StorageError` that says so: reading the file alone would
silently miss those commits.

Parts of the schema nothing has made yet (a database only a saver wrote has no trace,
memory or run tables; see ``schema.PARTS``) read as empty: each connection attaches an
empty in-memory database holding their tables, which SQLite looks a name up in after the
file. Before each transaction such a connection asks the file which parts it has now, and
drops the stand-ins of a part a writer has made meanwhile: a reader left open then reads
the real tables. Nothing is written to the file.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import NullPool

from sutram_core.backends.sql import fresh_schema, migrations, schema
from sutram_core.config import DatabaseURL
from sutram_core.errors import SchemaVersionError, StorageError

__all__ = ["check_schema", "read_only_engine", "write_refused"]

# what opening a WAL-mode file read-only answers where its -shm cannot be created or used:
# SQLITE_CANTOPEN (read-only filesystem), SQLITE_READONLY_DIRECTORY, SQLITE_READONLY_CANTINIT
_NO_SHM_CODES = frozenset({14, 1544, 1288})
_WAL_HEADER = 32  # bytes of a -wal file that holds no commit


def _how(url: DatabaseURL) -> str:
    return "immutable=1" if url.options.get("immutable") == "1" else "mode=ro"


def write_refused(url: DatabaseURL) -> StorageError:
    """The error every write on a read-only database raises."""
    return StorageError(
        f"the SQLite database {url.path} was opened read-only ({_how(url)}), so it cannot be written; "
        "open it without ?mode=ro / ?immutable=1, where its file and folder are writable, to write"
    )


class _Opener:
    """Opens connections for the engine: read-only, immutable when SQLite needs it to be."""

    def __init__(self, path: Path, immutable: bool) -> None:
        self.path = path.absolute()
        self.immutable = immutable
        self._lock = threading.Lock()
        # the parts the file lacks, as last seen; None until its schema is read (check_schema)
        self.missing: frozenset[str] | None = None

    def _connect(self, immutable: bool) -> sqlite3.Connection:
        uri = f"file:{quote(str(self.path))}?mode=ro" + ("&immutable=1" if immutable else "")
        # a file that has every part gets plain connections: nothing to stand in, nothing to check
        factory = sqlite3.Connection if self.missing == frozenset() else _Reader
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30, factory=factory)
        if isinstance(conn, _Reader):
            conn.opener = self
        return conn

    def __call__(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise StorageError(
                f"no SQLite database at {self.path}: a read-only opening (mode=ro) creates nothing; check the path"
            )
        with self._lock:
            if not self.immutable:
                conn = self._connect(False)
                try:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the -wal/-shm
                    return conn
                except sqlite3.OperationalError as exc:
                    conn.close()
                    code = getattr(exc, "sqlite_errorcode", 0)
                    if code not in _NO_SHM_CODES and code & 0xFF not in _NO_SHM_CODES:
                        raise
                # a WAL-mode file whose -shm cannot be created here: the file alone, if it is all
                self.immutable = True
            self._refuse_pending_wal()
            return self._connect(True)

    def _refuse_pending_wal(self) -> None:
        wal = Path(f"{self.path}-wal")
        if wal.is_file() and wal.stat().st_size > _WAL_HEADER:
            raise StorageError(
                f"cannot read {self.path} read-only: its {wal.name} holds commits not yet in the database file, "
                f"and SQLite cannot use a {self.path.name}-shm beside it here (there is none and none can be "
                "created, or it is not writable), so reading the file alone would miss them. Copy the -shm "
                "along with the database and its -wal, or run PRAGMA wal_checkpoint(TRUNCATE) on the database "
                "before copying it"
            )


def read_only_engine(url: DatabaseURL) -> Engine:
    """An engine whose connections open ``url``'s file read-only (see the module docstring)."""
    assert url.path is not None
    opener = _Opener(url.path, _how(url) == "immutable=1")
    engine = create_engine("sqlite+pysqlite://", creator=opener, poolclass=NullPool)
    _OPENERS[engine] = opener

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions are begun below, as for writable files
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA query_only=ON")  # a stray write fails at once, whatever the file allows
        cur.close()
        if isinstance(dbapi_conn, _Reader):
            dbapi_conn.stand_in(opener.missing or frozenset())

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        raw = conn.connection.driver_connection
        if not raw.in_transaction:  # type: ignore[union-attr]  # else: joining Database's own
            raw.execute("BEGIN")  # type: ignore[union-attr]

    return engine


_OPENERS: weakref.WeakKeyDictionary[Engine, _Opener] = weakref.WeakKeyDictionary()


_STAND_INS = "sutram_stand_ins"  # the attached in-memory database of empty tables


def _stand_in(sql: str) -> str | None:
    """``sql`` making its table in the attached database of stand-ins instead, if it makes
    a table (indexes and triggers are not needed to read nothing)."""
    for head in ("CREATE TABLE ", "CREATE VIRTUAL TABLE IF NOT EXISTS "):
        if sql.startswith(head):
            return f"{head}{_STAND_INS}.{sql[len(head):]}"
    return None


class _Reader(sqlite3.Connection):
    """A read-only connection that stands in empty tables for the parts of the schema the
    file lacks, and drops them once the file has the part (checked as each transaction
    begins, when the file's schema has changed since the last check)."""

    opener: _Opener | None = None
    standing: frozenset[str] = frozenset()  # the parts whose stand-ins are attached
    seen: int | None = None  # the file's schema version at the last check

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if not (self.standing and sql == "BEGIN" and not self.in_transaction):
            return super().execute(sql, *args)
        begun = super().execute(sql)
        # read in the transaction: its snapshot is the one the check sees
        version = super().execute("PRAGMA main.schema_version").fetchone()[0]
        if version == self.seen:
            return begun
        self.seen = version
        # this read also brings the connection's copy of the file's schema up to date
        present = migrations.present_parts(name for (name,) in super().execute(migrations.SQLITE_PART_TABLES))
        if not present & self.standing:
            return begun
        super().execute("ROLLBACK")  # an attached database cannot be detached in a transaction
        self.stand_in(self.standing - present)
        if self.opener is not None and self.opener.missing:
            self.opener.missing = self.opener.missing - present  # later connections stand in less
        return super().execute(sql)

    def stand_in(self, parts: frozenset[str]) -> None:
        """Attach empty tables for ``parts`` (none: detach them)."""
        if parts == self.standing:
            return
        super().execute("PRAGMA query_only=OFF")
        try:
            if self.standing:
                super().execute(f"DETACH DATABASE {_STAND_INS}")
                self.standing = frozenset()
            if parts:
                super().execute(f"ATTACH DATABASE ':memory:' AS {_STAND_INS}")
                for sql in fresh_schema.statements("sqlite", parts):
                    made = _stand_in(sql)
                    if made:
                        super().execute(made)
                self.standing = parts
        finally:
            super().execute("PRAGMA query_only=ON")


def check_schema(conn: Connection, url: DatabaseURL) -> int:
    """The schema version of a read-only database, or :class:`SchemaVersionError` if it is
    not the one this Sutram reads (it cannot be upgraded without writing). The parts of the
    schema it lacks get empty stand-ins on each connection of its engine."""
    version = migrations.current_version(conn)
    need = len(migrations.MIGRATIONS)
    if version == need:
        tables = conn.exec_driver_sql(migrations.SQLITE_PART_TABLES)
        missing = schema.ALL_PARTS - migrations.present_parts(name for (name,) in tables)
        _OPENERS[conn.engine].missing = missing
        if missing:
            conn.rollback()  # this connection was opened before they were known
            raw = conn.connection.driver_connection
            assert isinstance(raw, _Reader)
            raw.stand_in(missing)
        return version
    if version > need:
        raise SchemaVersionError(
            f"the database {url.path} is at schema version {version} but this Sutram knows only up to {need}; "
            "upgrade the sutram package"
        )
    if version == 0:
        raise SchemaVersionError(
            f"{url.path} holds no Sutram schema, and it was opened read-only ({_how(url)}), so none is created: "
            "point the URL at a database Sutram has written"
        )
    raise SchemaVersionError(
        f"the database {url.path} is at schema version {version}, older than the version {need} this Sutram "
        f"reads, and it was opened read-only ({_how(url)}), so it cannot be upgraded: open it once without "
        "?mode=ro where it is writable (any Sutram store does, e.g. `sutram runs --url sqlite:///...`), or read "
        "it with the Sutram release that wrote it"
    )
