"""Which database errors are worth waiting out: the one policy every SQL store follows.

A server that restarts, a connection the network dropped, a SQLite file another process
holds locked, a disk that is full for a moment: each makes one statement fail, and the
same statement succeeds a little later. Everything else (a constraint, a syntax error, a
missing table) fails the same way every time. :func:`is_transient` tells the two apart;
:class:`~sutram_core.backends.sql.database.Database` retries a transaction whose first
statement met a transient error (nothing was applied yet), and otherwise raises
:class:`~sutram_core.errors.DatabaseUnavailableError`, which the durable runner retries
from its checkpoint and then pauses on, never failing a run for good.

>>> import sqlite3
>>> is_transient(sqlite3.OperationalError("database is locked"))
True
>>> is_transient(sqlite3.IntegrityError("UNIQUE constraint failed: t.id"))
False
"""

from __future__ import annotations

__all__ = ["is_transient"]

# SQLSTATE classes and codes that a later attempt can get past: connection exceptions
# (08), insufficient resources (53: disk full, out of memory, too many connections),
# the server shutting down or starting (57P01-57P03), serialization failures and deadlocks.
_TRANSIENT_CLASSES = frozenset({"08", "53"})
_TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})
# sqlite3 reports every condition as OperationalError; only the text tells them apart
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy",
                     "disk is full", "disk i/o error")


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (a driver error, or SQLAlchemy's wrapper of one) may go away if
    the same work is tried again a little later."""
    if getattr(error, "connection_invalidated", False):
        return True  # SQLAlchemy saw the connection drop
    orig = getattr(error, "orig", None) or error
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] in _TRANSIENT_CLASSES or sqlstate in _TRANSIENT_CODES
    module = type(orig).__module__
    name = type(orig).__name__
    if module.startswith("psycopg"):
        # no SQLSTATE: the client could not reach the server (refused, reset, closed)
        return name == "OperationalError"
    if module == "sqlite3":
        text = str(orig).lower()
        return any(marker in text for marker in _SQLITE_TRANSIENT)
    return False
