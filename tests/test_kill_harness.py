"""Workers SIGKILLed at seeded random calls: every run ends like an uninterrupted one, each
model and tool call is made exactly once, no checkpoint is lost or doubled, no run is left.

SUTRAM_KILL_SOAK=N multiplies the number of runs (a longer soak)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sutram_adapters.langgraph.durable import durable
from sutram_core.runs import RunStatus
from tests import kill_harness

ROOT = Path(__file__).resolve().parents[1]
RUNS = 10 * int(os.environ.get("SUTRAM_KILL_SOAK", "1"))
MIN_KILLS = 25  # per backend: at least 50 per test session across SQLite and PostgreSQL


def test_killed_workers_leave_every_run_complete_and_every_call_made_once(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_TEST_CALL_LOG", str(tmp_path / "reference.log"))  # this process's own calls
    log = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SUTRAM_TEST_CALL_LOG": str(log)}
    rng = random.Random(20261126)
    kills = workers = 0
    deadline = time.monotonic() + 240
    while True:
        assert time.monotonic() < deadline, f"not done after {workers} workers ({kills} kills)"
        # each worker dies before a seeded, random call (its 2nd to 5th, so every worker makes
        # progress); the one that finds nothing left to do exits normally
        kill_at = rng.randint(2, 5)
        proc = subprocess.run([sys.executable, "-m", "tests.kill_harness", db_url, str(RUNS), str(kill_at)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        workers += 1
        if proc.returncode == -9:
            kills += 1
            time.sleep(0.7)  # the dead worker's lease runs out
            continue
        assert proc.returncode == 0, proc.stderr
        break
    assert kills >= MIN_KILLS, f"only {kills} kills in {workers} workers"

    lines = log.read_text().splitlines()
    counts = Counter(lines)
    assert all(n == 1 for n in counts.values()), [line for line, n in counts.items() if n > 1][:5]
    per_run = len(kill_harness.NODES) * (kill_harness.CALLS_PER_NODE + 1)
    assert len(counts) == RUNS * per_run  # every call made, none twice

    reference = kill_harness.build()
    with durable(kill_harness.build(), url=db_url, tenant="harness", remember_runs=False) as runner:
        runs = runner.ledger.runs("harness", limit=1000)
        assert sorted(r.run_id for r in runs) == sorted(f"run-{i}" for i in range(RUNS))
        assert all(r.status is RunStatus.COMPLETED for r in runs), [(r.run_id, r.status) for r in runs]
        clean = durable(reference, url=db_url, tenant="clean", remember_runs=False)
        clean.invoke({"topic": "t0", "notes": []}, thread_id="reference", run_id="reference")
        expected_checkpoints = len(list(clean.saver.list({"configurable": {"thread_id": "reference"}})))
        clean.close()
        for i in range(RUNS):
            config = {"configurable": {"thread_id": f"thread-{i}"}}
            assert runner.graph.get_state(config).values["notes"] == kill_harness.expected_notes(f"t{i}")
            assert len(list(runner.saver.list(config))) == expected_checkpoints
    print(f"{kills} kills over {workers} worker processes, {RUNS} runs")
