"""Typed errors raised by Sutram.

Every error says what was wrong and what to do about it. Driver errors are wrapped at the
backend boundary, so callers only ever need to catch these classes. The validation errors
(``InvalidMemoryError``, ``InvalidCheckpointError``) are also ``ValueError``s, because
LangGraph's stores and savers raise ``ValueError`` for the same input and code written for
them catches that::

    SutramError
    ├── ConfigurationError            bad URL, unknown backend, bad option
    │   └── MissingDependencyError    an optional extra is not installed
    ├── ConsoleError                  a console request that cannot be answered as asked
    ├── TenantError                   missing, malformed or mismatched tenant id
    ├── StorageError                  the database failed (wraps the driver error)
    │   ├── SchemaVersionError        the schema is newer than this Sutram (or, opened read-only, older)
    │   └── DatabaseUnavailableError  unreachable, restarting, locked or full: worth retrying later
    ├── CheckpointError
    │   ├── InvalidCheckpointError    input that cannot be stored (nothing is written); also a ValueError
    │   ├── CheckpointDecodeError     a stored value cannot be turned back into an object
    │   └── CheckpointCorruptError    stored rows are inconsistent (for example a broken delta chain)
    ├── MemoryStoreError
    │   ├── InvalidMemoryError        a memory, namespace, filter or query that cannot be used (nothing is
    │   │                             written); also a ValueError
    │   └── EmbeddingError            the embedder failed or gave vectors of the wrong size (nothing is written)
    └── RunError
        ├── RunNotFoundError          no run with that id in that tenant
        ├── InvalidRunError           a run, status change or budget that cannot be used (nothing is written)
        ├── LeaseLostError            another worker took over the run; this one must stop writing
        └── RunPausedError            a run paused instead of failing (a recoverable error persisted)
"""

from __future__ import annotations

__all__ = [
    "CheckpointCorruptError",
    "CheckpointDecodeError",
    "CheckpointError",
    "ConfigurationError",
    "ConsoleError",
    "DatabaseUnavailableError",
    "EmbeddingError",
    "InvalidCheckpointError",
    "InvalidMemoryError",
    "InvalidRunError",
    "LeaseLostError",
    "MemoryStoreError",
    "MissingDependencyError",
    "RunError",
    "RunNotFoundError",
    "RunPausedError",
    "SchemaVersionError",
    "StorageError",
    "SutramError",
    "TenantError",
]


class SutramError(Exception):
    """Base class of every error Sutram raises on purpose."""


class ConfigurationError(SutramError):
    """The configuration (URL, options) cannot be used as given."""


class MissingDependencyError(ConfigurationError):
    """An optional dependency is needed; the message names the pip extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package} is not installed; install it with: pip install \"sutram[{extra}]\""
        )


class ConsoleError(SutramError):
    """A console request that cannot be answered as asked (a malformed filter, a missing run)."""


class TenantError(SutramError):
    """A tenant id is missing, malformed, or differs from the one a store is bound to."""


class StorageError(SutramError):
    """The database failed; the driver's error is the ``__cause__``."""


class SchemaVersionError(StorageError):
    """The database schema is newer than this version of Sutram understands, or (opened
    read-only, so it cannot be upgraded) older than it needs."""


class DatabaseUnavailableError(StorageError):
    """The database could not be reached or could not take the work for a while (server
    down or restarting, connection dropped, SQLite file locked by another process, disk
    full), and retrying for ``Database(retry_seconds=)`` did not get through. The
    transaction was rolled back, unless the connection dropped during its commit, when it
    may have been applied: Sutram's own writes are safe to repeat. Try again later; the
    durable runner does so from the run's checkpoint and pauses the run if it persists."""


class CheckpointError(SutramError):
    """Base class of checkpoint errors."""


class InvalidCheckpointError(CheckpointError, ValueError):
    """A checkpoint, config or write cannot be stored as given. Nothing was written.

    Also a ``ValueError``, as LangGraph's savers raise for the same input."""


class CheckpointDecodeError(CheckpointError):
    """A stored value cannot be deserialized.

    Raised instead of silently turning the value into ``None`` or into its raw payload.
    The attributes name where the value lives, so it can be inspected or repaired.
    """

    def __init__(
        self,
        message: str,
        *,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str | None,
        channel: str,
        type_name: str,
    ) -> None:
        self.thread_id = thread_id
        self.checkpoint_ns = checkpoint_ns
        self.checkpoint_id = checkpoint_id
        self.channel = channel
        self.type_name = type_name
        super().__init__(
            f"cannot deserialize channel {channel!r} of thread {thread_id!r} "
            f"(namespace {checkpoint_ns!r}, checkpoint {checkpoint_id}): {message}. "
            f"Stored type: {type_name}. Make that type importable (or allow it in the "
            "serializer's allowed_msgpack_modules) and read again; the stored bytes are intact."
        )


class CheckpointCorruptError(CheckpointError):
    """Stored checkpoint rows are inconsistent with each other."""


class MemoryStoreError(SutramError):
    """Base class of memory errors."""


class InvalidMemoryError(MemoryStoreError, ValueError):
    """A memory, namespace, filter or query cannot be used as given. Nothing was written.

    Also a ``ValueError``, as LangGraph's stores raise for the same input (``except
    ValueError`` written for them catches it)."""


class EmbeddingError(MemoryStoreError):
    """The embedder failed or returned vectors of the wrong shape. Nothing was written."""


class RunError(SutramError):
    """Base class of run-ledger errors."""


class RunNotFoundError(RunError):
    """No run with that id exists in that tenant."""


class InvalidRunError(RunError):
    """A run, a status change or a budget cannot be used as given. Nothing was written."""


class LeaseLostError(RunError):
    """This worker's lease on a run expired and another worker claimed it (fencing): stop
    working on the run; its state now belongs to the new owner."""


class RunPausedError(RunError):
    """The run hit an error that is usually temporary (rate limit, timeout, connection), kept
    hitting it after the retries, and is paused with its state intact: resume it later with
    ``runner.resume(run_id)``. ``run_id`` and ``reason`` say which and why."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"run {run_id} is paused: {reason}; resume it with runner.resume({run_id!r})")
