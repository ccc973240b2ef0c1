"""A bounded local file for span rows the trace database could not take.

When the database is unreachable (:class:`~sutram_core.errors.DatabaseUnavailableError`)
the tracer appends each batch of rows here instead of dropping it, and writes the spooled
batches back, oldest first, before any newer batch once the database answers again; so
spans keep their order and the audit chain is extended in the order spans ended. The spool
holds at most ``max_bytes``; past that new batches are dropped, counted and warned about.

Each process appends to a file of its own (``<pid>-<random>.spool``, one JSON array of
rows per line). A spool left behind by a process that died is adopted by the next tracer
that opens the same folder, so an outage followed by a crash loses nothing either.

>>> import tempfile
>>> spool = SpanSpool(tempfile.mkdtemp(), max_bytes=1 << 20)
>>> spool.append([{"span_id": "a"}]), spool.append([{"span_id": "b"}])
(True, True)
>>> written = []
>>> spool.replay(written.extend)
2
>>> [r["span_id"] for r in written], spool.pending_bytes
(['a', 'b'], 0)
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["SpanSpool", "default_spool_dir"]

log = logging.getLogger("sutram.traces")


def default_spool_dir(url: Any = None) -> Path:
    """Where a tracer of the database ``url`` (a parsed ``DatabaseURL``) spools: the folder
    ``SUTRAM_SPOOL_DIR`` names, else beside a SQLite file (``spool/<file name>``), else
    ``~/.cache/sutram/spool/<digest of the server, port and database>``."""
    import hashlib
    from urllib.parse import urlsplit

    env = os.environ.get("SUTRAM_SPOOL_DIR")
    path = getattr(url, "path", None)
    if path is not None and not env:
        return Path(path).parent / "spool" / Path(path).name
    raw = getattr(url, "sqlalchemy_url", "") or ""
    parts = urlsplit(raw)
    where = f"{parts.hostname}:{parts.port}{parts.path}?{parts.query}" if parts.scheme else (str(path) or "default")
    key = hashlib.sha256(where.encode()).hexdigest()[:16]  # no user name or password in the path
    base = Path(env) if env else Path.home() / ".cache" / "sutram" / "spool"
    return base / key


_OPEN: weakref.WeakSet[SpanSpool] = weakref.WeakSet()


def _forget_parent_files() -> None:
    for spool in list(_OPEN):
        spool._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_files)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class SpanSpool:
    """Append batches of JSON-able rows; replay them in order (see the module docstring)."""

    def __init__(self, directory: str | Path, *, max_bytes: int = 64 << 20) -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._own = self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.spool"
        self._files: list[Path] = []  # oldest first; the last is ours once we append
        self.pending_bytes = 0
        self._adopt()
        _OPEN.add(self)

    def _after_fork(self) -> None:
        """In a forked child: a file of its own; the parent's spooled rows stay the parent's."""
        self._lock = threading.Lock()
        self._own = self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.spool"
        self._files = []
        self.pending_bytes = 0

    def _adopt(self) -> None:
        """Take over the spools of processes that died with rows still spooled."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.spool"), key=lambda p: p.stat().st_mtime):
            pid = path.name.split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                taken = path.with_name(f"{os.getpid()}-{uuid.uuid4().hex[:8]}.adopted.spool")
                with contextlib.suppress(OSError):  # another tracer adopted it first
                    path.rename(taken)
                    self._files.append(taken)
                    self.pending_bytes += taken.stat().st_size

    def append(self, rows: list[dict[str, Any]]) -> bool:
        """Spool one batch; False (nothing written) when it would pass ``max_bytes``."""
        line = orjson.dumps(rows) + b"\n"
        with self._lock:
            if self.pending_bytes + len(line) > self.max_bytes:
                return False
            try:
                # spans hold prompts and answers: readable by this user only
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self._own, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "ab") as f:
                    f.write(line)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:  # a read-only or full disk: the batch is lost, and counted
                log.warning("sutram: cannot spool spans in %s: %s", self.directory, exc)
                return False
            if not self._files or self._files[-1] != self._own:
                self._files.append(self._own)
            self.pending_bytes += len(line)
            return True

    def replay(self, write: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand every spooled batch to ``write``, oldest first; return the rows written.
        A batch is removed from the spool only after ``write`` returned; if ``write`` raises,
        the rest stays for the next replay (batches already written are not repeated)."""
        done = 0
        with self._lock:
            while self._files:
                path = self._files[0]
                try:
                    lines = path.read_bytes().splitlines()
                except FileNotFoundError:
                    lines = []
                for i, line in enumerate(lines):
                    rows = orjson.loads(line)
                    try:
                        write(rows)
                    except BaseException:
                        rest = b"".join(x + b"\n" for x in lines[i:])
                        tmp = path.with_suffix(".tmp")
                        tmp.write_bytes(rest)
                        tmp.replace(path)  # atomic: a crash keeps either the old or the new file
                        self.pending_bytes = sum(p.stat().st_size for p in self._files if p.exists())
                        raise
                    done += len(rows)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                self._files.pop(0)
            self.pending_bytes = 0
        return done
