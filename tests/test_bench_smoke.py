"""The benchmarks still run (small smoke runs; the figures are not asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_checkpointer_benchmark_runs_and_prints_ratios(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("SUTRAM_BENCH_PG_URL", None)
    proc = subprocess.run([sys.executable, "bench/checkpointer.py", "--quick", "--backend", "sqlite", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Sutram/peer" in proc.stdout
    figures = json.loads(out.read_text())["sqlite"]
    assert {f["figure"].split(",")[0] for f in figures} >= {"graph workload", "raw put+put_writes", "bytes on disk after all workloads (MiB)"}
    assert all(f["sutram"] > 0 and f["peer"] > 0 for f in figures)


def test_tracing_benchmark_runs_and_prints_ratios(tmp_path: Path) -> None:
    out = tmp_path / "tracing.json"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "bench/tracing.py", "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Sutram/peer" in proc.stdout and "sutram trace on a" in proc.stdout
    figures = json.loads(out.read_text())
    assert figures["spans_per_invocation"] == 21
    assert {"langfuse", "langsmith", "sutram"} <= figures["sync_added_us_per_span"].keys()


def test_memory_benchmark_runs_and_prints_ratios(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("SUTRAM_BENCH_PG_URL", None)
    proc = subprocess.run([sys.executable, "bench/memory.py", "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Sutram/peer" in proc.stdout
    figures = json.loads(out.read_text())
    ours, peer = figures["sutram_sqlite"], figures["in_memory_store"]
    assert ours["ingest_per_s"] > 0 and peer["vector_p50_ms"] > 0
    assert ours["recall_at_10"] == 1.0  # SQLite's vector search is exact


def test_durable_benchmark_runs_and_prints_ratios(tmp_path: Path) -> None:
    out = tmp_path / "durable.json"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("SUTRAM_BENCH_PG_URL", None)
    proc = subprocess.run([sys.executable, "bench/durable.py", "--quick", "--backend", "sqlite", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Sutram/peer" in proc.stdout
    figures = json.loads(out.read_text())["sqlite"]
    assert figures["repeats"]["sutram"] == [0] and figures["repeats"]["langgraph"] == [2]
    assert figures["step"]["peer_ms"] > 0 and figures["journal"]["replay_ms"] > 0


def test_console_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "console.json"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("SUTRAM_BENCH_PG_URL", None)
    proc = subprocess.run([sys.executable, "bench/console.py", "--quick", "--backend", "sqlite", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())["sqlite"]
    assert figures["run_page_rows"] == figures["big_spans"] and figures["runs_list_s"] > 0
