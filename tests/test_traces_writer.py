"""The background writer: off the hot path, bounded, lossless on a normal shutdown."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sutram_core.errors import ConfigurationError
from sutram_core.traces import Span, SpanKind, Tracer
from sutram_core.traces.writer import BackgroundWriter


def _spans(n: int, run: str = "r") -> list[Span]:
    out = []
    for i in range(n):
        s = Span(f"{run}-{i}", run, None if i == 0 else run, f"s{i}", SpanKind.CHAIN, "acme")
        s.finish({"i": i})
        out.append(s)
    return out


def test_close_writes_everything_queued(db_url: str) -> None:
    tracer = Tracer.from_url(db_url, interval=60)  # the thread would not wake on its own
    for s in _spans(1500):
        tracer.end(s)
    tracer.close()
    with Tracer.from_url(db_url) as reader:
        assert len(reader.store.run_spans("acme", "r")) == 1500
        report = reader.store.verify_audit("acme")
        assert report.ok and report.records == 1500


def test_spans_are_written_in_batches_without_a_flush(tmp_path: Path) -> None:
    with Tracer.from_url(f"sqlite:///{tmp_path / 'b.db'}", batch_size=50, interval=0.05) as tracer:
        for s in _spans(200):
            tracer.end(s)
        deadline = time.monotonic() + 10
        while tracer.stats.written < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tracer.stats.written == 200
        assert 1 <= tracer.stats.batches <= 8


def test_a_full_queue_with_drop_policy_counts_what_it_drops() -> None:
    release = threading.Event()
    seen: list[int] = []

    def slow(batch: list[int]) -> None:
        release.wait(10)
        seen.extend(batch)

    writer: BackgroundWriter[int] = BackgroundWriter(slow, max_queue=10, batch_size=10, interval=0.01, on_full="drop")
    writer.submit(-1)
    time.sleep(0.1)  # the thread is now stuck in ``slow`` with item -1
    for i in range(25):
        writer.submit(i)
    assert writer.stats.dropped == 15
    release.set()
    writer.close()
    assert seen == [-1, *range(10)]
    assert writer.stats.written == 11


def test_a_full_queue_with_block_policy_loses_nothing() -> None:
    seen: list[int] = []

    def slow(batch: list[int]) -> None:
        time.sleep(0.01)
        seen.extend(batch)

    writer: BackgroundWriter[int] = BackgroundWriter(slow, max_queue=8, batch_size=4, interval=0.01)
    for i in range(200):
        writer.submit(i)
    writer.close()
    assert seen == list(range(200))
    assert writer.stats.dropped == 0 and writer.stats.blocked > 0


def test_a_failing_store_is_retried_then_counted_not_raised() -> None:
    attempts: list[int] = []

    def broken(batch: list[int]) -> None:
        attempts.append(len(batch))
        raise OSError("disk full")

    writer: BackgroundWriter[int] = BackgroundWriter(broken, retries=2, interval=60)
    writer.submit(1)
    writer.flush()
    assert attempts == [1, 1, 1] and writer.stats.failed == 1
    writer.close()


def test_bad_policy_is_a_typed_error() -> None:
    with pytest.raises(ConfigurationError, match="'block' or 'drop'"):
        BackgroundWriter(lambda b: None, on_full="ignore")


def test_interpreter_exit_drains_the_queue(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'exit.db'}"
    script = f"""
from sutram_core.traces import Span, SpanKind, Tracer
tracer = Tracer.from_url({url!r}, interval=60)
for i in range(300):
    s = Span(f"s{{i}}", "r", None if i == 0 else "r", "x", SpanKind.CHAIN, "acme")
    s.finish()
    tracer.end(s)
# no flush, no close: the process just ends
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    with Tracer.from_url(url) as reader:
        assert len(reader.store.run_spans("acme", "r")) == 300
