"""The tracer: where adapters hand their spans, and what turns them into stored rows.

Adapters (the LangChain callback handler, the LlamaIndex handlers) build
:class:`~sutram_core.traces.spans.Span` objects and call :meth:`Tracer.start` when a root
begins and :meth:`Tracer.end` when any span ends. Both only queue the span. The writer
thread then applies the :class:`~sutram_core.traces.redaction.Redactor`, prices model
calls, writes the batch in one transaction (with its audit entries) and passes the
stored spans to the exporters. While the database is unreachable, batches go to a bounded
local spool (:mod:`sutram_core.traces.spool`) and are written, in order, when it answers
again; what does not fit is dropped and counted in :attr:`Tracer.stats`.

>>> tracer = Tracer.from_url("sqlite:///.sutram/sutram.db")    # doctest: +SKIP
>>> tracer.flush()                                              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from sutram_core.config import DatabaseURL, parse_url
from sutram_core.errors import DatabaseUnavailableError
from sutram_core.traces.pricing import PriceTable
from sutram_core.traces.redaction import DEFAULT_MAX_CHARS, Redactor
from sutram_core.traces.spans import Span, SpanKind, SpanStatus
from sutram_core.traces.spool import SpanSpool, default_spool_dir
from sutram_core.traces.store import SPAN_COLUMNS, StoredSpan, TraceStore
from sutram_core.traces.writer import BackgroundWriter, WriterStats

__all__ = ["SpanExporter", "Tracer", "open_trace_store", "shared_tracer"]

log = logging.getLogger("sutram.traces")
# while the database is unreachable, how often a write of the spooled spans is tried
_PROBE_SECONDS = 2.0


class SpanExporter(Protocol):
    """Receives every batch of stored spans after it is written (for example over OTLP)."""

    def export(self, spans: Sequence[StoredSpan]) -> None:
        """Send ``spans``; called on the writer thread."""

    def shutdown(self) -> None:
        """Flush and release resources."""


class _Started:
    """Queue marker: a root span began (it is stored as running until it ends)."""

    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span


class Tracer:
    """Queues spans and writes them on a background thread (see the module docstring)."""

    def __init__(
        self,
        store: TraceStore,
        *,
        content: bool | None = None,
        redact: Callable[[Any], Any] | None = None,
        mask: bool = True,
        max_chars: int = DEFAULT_MAX_CHARS,
        prices: PriceTable | None = None,
        exporters: Sequence[SpanExporter] = (),
        max_queue: int = 10_000,
        batch_size: int = 512,
        interval: float = 0.2,
        on_full: str = "block",
        max_block_seconds: float = 2.0,
        spool_dir: str | Path | None = None,
        spool_bytes: int = 64 << 20,
        owns: Any = None,
    ) -> None:
        self.store = store
        self.redactor = Redactor(content=content, redact=redact, mask=mask, max_chars=max_chars)
        self.prices = prices if prices is not None else PriceTable.default()
        self.exporters = list(exporters)
        self._owns = owns  # a Database this tracer opened and must close
        # spans the database cannot take while it is unreachable wait here (see spool.py)
        db_url = getattr(getattr(store, "db", None), "url", None)
        self._spool = SpanSpool(spool_dir or default_spool_dir(db_url), max_bytes=spool_bytes)
        self._next_probe = 0.0
        self._down = False  # the last write met an unreachable database
        self._writer: BackgroundWriter[Span | _Started] = BackgroundWriter(
            self._write_batch, max_queue=max_queue, batch_size=batch_size, interval=interval, on_full=on_full,
            max_block_seconds=max_block_seconds, idle=self._replay_spool,
        )

    @classmethod
    def from_url(cls, url: str | DatabaseURL | None = None, **options: Any) -> Tracer:
        """A tracer writing to the database ``url`` names (default: ``SUTRAM_URL``, else the
        embedded SQLite file). ``options`` are those of :class:`Tracer`."""
        from sutram_core.backends.sql.database import Database
        from sutram_core.backends.sql.traces import SqlTraceStore

        # a short wait per write: while the database is away, spans go to the spool
        db = Database(url, retry_seconds=0.5)
        return cls(SqlTraceStore(db), owns=db, **options)

    @property
    def keeps_content(self) -> bool:
        """Whether inputs and outputs are stored (adapters skip capturing them otherwise)."""
        return self.redactor.content

    @property
    def stats(self) -> WriterStats:
        """Queue counters: submitted, written, dropped, blocked, failed, batches."""
        return self._writer.stats

    # -- the hot path ----------------------------------------------------------------

    def start(self, span: Span) -> None:
        """A span began. Only roots are stored before they end (as ``running``)."""
        if span.parent_id is None:
            self._writer.submit(_Started(span))

    def end(self, span: Span) -> None:
        """A span ended (``span.finish`` was called): queue it for writing."""
        self._writer.submit(span)

    # -- lifecycle -------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything queued so far before returning (and the spooled spans, if the
        database answers again)."""
        self._next_probe = 0.0
        self._writer.flush()

    async def aflush(self) -> None:
        """Async twin of :meth:`flush` (runs it on a worker thread)."""
        await asyncio.to_thread(self._writer.flush)

    def close(self) -> None:
        """Flush, stop the writer thread, shut the exporters down. Idempotent."""
        self._writer.close()
        for exporter in self.exporters:
            exporter.shutdown()
        self.exporters = []
        if self._owns is not None:
            self._owns.close()
            self._owns = None

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread -----------------------------------------------------------

    def _write_batch(self, batch: list[Span | _Started]) -> None:
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        ids = _IdText()
        for item in batch:
            if isinstance(item, _Started):
                if item.span.end_ns is not None:
                    continue  # it ended already: its final row is queued behind this marker
                row = self._row(item.span, True, ids)
                rows.setdefault((row["tenant_id"], row["span_id"]), row)
            else:
                row = self._row(item, False, ids)
                rows[(row["tenant_id"], row["span_id"])] = row
        if not rows:
            return
        batch_rows = list(rows.values())
        # spooled spans go first, so spans reach the database (and its audit chain) in the
        # order they ended; while the database is known to be away, no batch waits on it
        if (self._down or self._spool.pending_bytes) and not self._replay_spool():
            self._keep(batch_rows)
            return
        try:
            self._store_rows(batch_rows)
        except DatabaseUnavailableError as exc:
            self._went_down(exc)
            self._keep(batch_rows)
            return
        self._came_back()

    def _went_down(self, exc: Exception) -> None:
        self._next_probe = time.monotonic() + _PROBE_SECONDS
        if not self._down:
            self._down = True
            log.warning("sutram: the trace database is unreachable (%s); spooling spans to %s",
                        exc, self._spool.directory)

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            log.warning("sutram: the trace database answers again; %d spooled spans written",
                        self.stats.replayed)

    def _store_rows(self, rows: list[dict[str, Any]]) -> None:
        self.store.write_spans(rows)
        if self.exporters:
            finished = [StoredSpan.from_row([r[c] for c in SPAN_COLUMNS]) for r in rows
                        if r["status"] != SpanStatus.RUNNING]
            for exporter in self.exporters:
                exporter.export(finished)

    def _keep(self, rows: list[dict[str, Any]]) -> None:
        if self._spool.append(rows):
            self.stats.spooled += len(rows)
        else:
            self._writer.count_dropped(len(rows), f"trace database unreachable and the spool in "
                                                  f"{self._spool.directory} is full ({self._spool.max_bytes} bytes)")

    def _replay_spool(self) -> bool:
        """Write the spooled spans, oldest first, if it is time to try the database again
        (every few seconds while it is away); True when the database may be written to."""
        if time.monotonic() < self._next_probe:
            return False
        if self._spool.pending_bytes:
            try:
                self.stats.replayed += self._spool.replay(self._store_rows)
            except DatabaseUnavailableError as exc:
                self._went_down(exc)
                return False
            self._came_back()
        return True

    def _row(self, span: Span, running: bool, ids: _IdText) -> dict[str, Any]:
        red = self.redactor
        cost = span.cost_usd
        if cost is None and span.kind in (SpanKind.LLM, SpanKind.EMBEDDING):
            cost = self.prices.cost(
                span.response_model or span.request_model,
                input_tokens=span.input_tokens, output_tokens=span.output_tokens,
                cache_read_tokens=span.cache_read_tokens,
            )
        attributes = span.attributes
        if span.error_stack is not None and not running:
            # OTel's name for it; a content attribute (dropped with the content, hooked, masked)
            attributes = {**attributes, "exception.stacktrace": "".join(span.error_stack.format())}
        attrs_text = red.attributes(attributes)
        return {
            "tenant_id": span.tenant_id,
            "span_id": ids(span.span_id),
            "run_id": ids(span.run_id),
            "parent_id": None if span.parent_id is None else ids(span.parent_id),
            "name": span.name,
            "kind": span.kind,
            "operation": span.operation,
            "status": SpanStatus.RUNNING if running else span.status,
            "error_type": None if running else span.error_type,
            "error_message": None if running else red.message(span.error_message),
            "start_ns": span.start_ns,
            "end_ns": None if running else span.end_ns,
            "thread_id": span.thread_id,
            "checkpoint_ns": span.checkpoint_ns,
            "task_id": span.task_id,
            "step": span.step,
            "provider": span.provider,
            "request_model": span.request_model,
            "response_model": None if running else span.response_model,
            "input_tokens": None if running else span.input_tokens,
            "output_tokens": None if running else span.output_tokens,
            "cache_read_tokens": None if running else span.cache_read_tokens,
            "cost_usd": None if running else cost,
            "tool_name": span.tool_name,
            "tool_call_id": span.tool_call_id,
            "inputs": red.text(span.inputs),
            "outputs": None if running else red.text(span.outputs),
            "attributes": attrs_text,
        }


class _IdText:
    """Span ids as text, each UUID formatted once per batch (a run's id and a parent's
    id recur on many rows, and formatting a UUID costs about a microsecond)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[int, str] = {}

    def __call__(self, value: str | UUID) -> str:
        if isinstance(value, str):
            return value
        key = value.int
        text = self._seen.get(key)
        if text is None:
            text = self._seen[key] = str(value)
        return text


_SHARED: dict[str, Tracer] = {}
_SHARED_LOCK = threading.Lock()


def shared_tracer(url: str | DatabaseURL | None = None) -> Tracer:
    """The process-wide tracer for ``url`` with default options, created on first use.

    Handlers made with no options share it, so creating a handler per request costs
    neither a connection pool nor a thread.
    """
    parsed = url if isinstance(url, DatabaseURL) else parse_url(url)
    key = parsed.sqlalchemy_url
    with _SHARED_LOCK:
        tracer = _SHARED.get(key)
        if tracer is None or tracer._writer._closed:
            tracer = _SHARED[key] = Tracer.from_url(parsed)
        return tracer


@contextlib.contextmanager
def open_trace_store(url: str | DatabaseURL | None = None) -> Iterator[TraceStore]:
    """The trace store of the database ``url`` names, for reading (no writer thread).

    >>> with open_trace_store() as store:           # doctest: +SKIP
    ...     store.runs("acme", limit=10)
    """
    from sutram_core.backends.sql.database import Database
    from sutram_core.backends.sql.traces import SqlTraceStore

    db = Database(url)
    try:
        yield SqlTraceStore(db)
    finally:
        db.close()
