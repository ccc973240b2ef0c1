"""A bounded queue drained by one background thread, in batches.

The caller's thread only appends to a deque. The writer thread wakes when a batch is
ready or every ``interval`` seconds, and hands everything queued to ``handle`` in one
call (one database transaction). ``flush()`` and ``close()`` drain synchronously; so does
interpreter exit, for every writer still open.

When the queue is full the ``on_full`` policy decides, and the :class:`WriterStats`
count it: ``"block"`` (the default) makes the caller wait until the writer has made
room, for at most ``max_block_seconds``, then drops the item (counted in
``stats.dropped``, with a warning): tracing never stalls the app for longer than that;
``"drop"`` discards the new item at once and counts it.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sutram_core.errors import ConfigurationError

__all__ = ["BackgroundWriter", "WriterStats"]

T = TypeVar("T")
log = logging.getLogger("sutram.traces")
_OPEN: weakref.WeakSet[BackgroundWriter[Any]] = weakref.WeakSet()


@dataclass
class WriterStats:
    """Counters since the writer started."""

    submitted: int = 0  # approximate under heavy multi-threaded load (not locked: the hot path)
    written: int = 0  # items handed to ``handle`` without an error
    dropped: int = 0  # items lost: the queue was full (policy "drop", or "block" past its bound)
    #                   or the database was unreachable and the spool full (spans)
    blocked: int = 0  # times a caller waited for room (policy "block")
    failed: int = 0  # items in batches whose ``handle`` kept failing
    spooled: int = 0  # spans kept in the local spool while the database was unreachable
    replayed: int = 0  # spooled spans written once the database answered again
    batches: int = 0
    busy_seconds: float = 0.0  # CPU time the writer thread spent in ``handle``


class BackgroundWriter(Generic[T]):
    """Batches items to ``handle`` on a daemon thread (see the module docstring)."""

    def __init__(
        self,
        handle: Callable[[list[T]], None],
        *,
        max_queue: int = 10_000,
        batch_size: int = 512,
        interval: float = 0.2,
        on_full: str = "block",
        retries: int = 3,
        name: str = "sutram-trace-writer",
        max_block_seconds: float = 2.0,
        idle: Callable[[], object] | None = None,
    ) -> None:
        if on_full not in ("block", "drop"):
            raise ConfigurationError(f"on_full={on_full!r}: use 'block' or 'drop'")
        if max_queue < 1 or batch_size < 1:
            raise ConfigurationError("max_queue and batch_size must be at least 1")
        self._handle = handle
        self._max = max_queue
        self._batch = min(batch_size, max_queue)
        self._interval = interval
        self._block = on_full == "block"
        self._retries = retries
        self._max_block = float(max_block_seconds)
        self._idle = idle  # called when the queue is empty: at every tick and after a flush
        self._queue: deque[T] = deque()
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._drain_lock = threading.Lock()  # one drain at a time: the thread, or flush()
        self._count_lock = threading.Lock()
        self._closed = False
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        _OPEN.add(self)
        _register_fork_hooks()

    def submit(self, item: T) -> None:
        """Queue ``item`` (the hot path: a length check and an append)."""
        queue = self._queue
        if len(queue) >= self._max:
            if not self._room_for_one():
                return
        queue.append(item)
        self.stats.submitted += 1
        if len(queue) >= self._batch and not self._wake.is_set():
            self._wake.set()

    def _room_for_one(self) -> bool:
        if self._closed:
            raise ConfigurationError("this trace writer is closed; create a new tracer")
        if self._block:
            self.stats.blocked += 1
            deadline = time.monotonic() + self._max_block
            while len(self._queue) >= self._max:
                if time.monotonic() >= deadline:
                    break
                self._wake.set()
                with self._room:
                    self._room.wait(0.05)
            else:
                return True
        self.count_dropped(1, f"sutram trace queue full ({self._max} items)")
        return False

    def count_dropped(self, n: int, why: str) -> None:
        """Count ``n`` lost items; the first loss of a run of them is logged as a warning."""
        with self._count_lock:  # exact even when many threads hit a full queue at once
            first = self.stats.dropped == 0
            self.stats.dropped += n
        if first:
            log.warning("%s: dropping spans; see the tracer's stats.dropped", why)

    def pending(self) -> int:
        """Items queued and not yet handed to ``handle``."""
        return len(self._queue)

    def flush(self) -> None:
        """Hand everything queued so far to ``handle`` before returning."""
        self._drain()
        if self._idle is not None:
            self._idle()

    def close(self) -> None:
        """Flush and stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()
        _OPEN.discard(self)

    def _after_fork(self) -> None:
        """In a forked child: what was queued is the parent's to write (its thread does), and
        the child gets fresh locks and a thread of its own (the parent's did not come along)."""
        self._queue = deque()
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._drain_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.stats = WriterStats()
        if not self._closed:
            self._thread = threading.Thread(target=self._loop, name=self._thread.name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
            if self._idle is not None and not self._queue:
                try:
                    self._idle()
                except Exception as exc:  # tracing must never kill its thread
                    log.error("sutram: trace writer idle task failed: %s", exc)

    def _drain(self) -> None:
        with self._drain_lock:
            queue = self._queue
            while queue:
                batch: list[T] = []
                try:
                    for _ in range(self._batch * 4):
                        batch.append(queue.popleft())
                except IndexError:
                    pass
                self._deliver(batch)
                with self._room:
                    self._room.notify_all()

    def _deliver(self, batch: list[T]) -> None:
        started = time.thread_time()
        try:
            self._deliver_with_retries(batch)
        finally:
            self.stats.busy_seconds += time.thread_time() - started

    def _deliver_with_retries(self, batch: list[T]) -> None:
        delay = 0.05
        for attempt in range(self._retries + 1):
            try:
                self._handle(batch)
            except Exception as exc:  # the caller's app must not die because tracing failed
                if attempt == self._retries:
                    self.stats.failed += len(batch)
                    log.error("sutram: %d trace items could not be written: %s", len(batch), exc)
                    return
                time.sleep(delay)
                delay *= 4
            else:
                self.stats.written += len(batch)
                self.stats.batches += 1
                return


_HELD: list[threading.Lock] = []  # drain locks taken for a fork, released after it in the parent
_FORK_HOOKS: list[bool] = []


class _MultiprocessingHook:
    """Registered once with multiprocessing: its child runs the after-fork callbacks (and
    clears its finalizers) after os.fork's hooks, then leaves with os._exit, skipping atexit."""

    registered = False

    @staticmethod
    def in_child(_self: object) -> None:
        import multiprocessing.util

        multiprocessing.util.Finalize(None, _drain_all_at_exit, exitpriority=10)


_MP_HOOK = _MultiprocessingHook()


def _finish_batches_before_fork() -> None:
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None and not _MultiprocessingHook.registered:
        _MultiprocessingHook.registered = True
        mp_util.register_after_fork(_MP_HOOK, _MultiprocessingHook.in_child)
    # a fork in the middle of a batch would leave the child a SQLite file it believes locked
    # (SQLite cannot be carried across a fork): wait for the batch, for a while at most
    for writer in list(_OPEN):
        lock = writer._drain_lock
        if lock.acquire(timeout=5):
            _HELD.append(lock)


def _release_after_fork() -> None:
    while _HELD:
        _HELD.pop().release()


def _restart_in_child() -> None:
    _HELD.clear()  # the child's writers get fresh locks
    for writer in list(_OPEN):
        try:
            writer._after_fork()
        except Exception as exc:  # pragma: no cover - one writer must not stop the others
            log.error("sutram: trace writer could not restart after fork: %s", exc)


def _register_fork_hooks() -> None:
    """Once, when the first writer is made: by then the database module (whose own hooks
    must run after these before a fork: hooks run in reverse order) is registered."""
    if _FORK_HOOKS or not hasattr(os, "register_at_fork"):
        return
    _FORK_HOOKS.append(True)
    os.register_at_fork(before=_finish_batches_before_fork, after_in_parent=_release_after_fork,
                        after_in_child=_restart_in_child)


@atexit.register
def _drain_all_at_exit() -> None:
    for writer in list(_OPEN):
        try:
            writer.close()
        except Exception as exc:  # pragma: no cover - best effort at interpreter exit
            log.error("sutram: trace writer failed at exit: %s", exc)
