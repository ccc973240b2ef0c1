"""Several worker processes share a backlog of interrupted runs on PostgreSQL: each run is
resumed by exactly one worker, completes, and repeats none of its model calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sutram_adapters.langgraph.durable import durable
from sutram_core.runs import RunStatus
from tests.durable_graph import Crash, build_crashing

ROOT = Path(__file__).resolve().parents[1]
RUNS = 100
WORKERS = 4

_WORKER = """
import json, sys
from sutram_adapters.langgraph.durable import durable
from tests.durable_graph import build_crashing
mine = []
with durable(build_crashing(), url=sys.argv[1], tenant="acme", lease_seconds=5, executor_id=sys.argv[2],
             remember_runs=False, trace=False) as runner:
    while True:
        got = runner.recover(limit=1)
        if not got:
            break
        mine += [(r.run_id, r.status.value) for r in got]
print(json.dumps(mine))
"""


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_four_workers_recover_a_hundred_runs_each_exactly_once(db_url: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("SUTRAM_TEST_CALL_LOG", str(calls))
    monkeypatch.setenv("SUTRAM_TEST_KILL_MARKER", str(tmp_path / "no-kill"))
    monkeypatch.setenv("SUTRAM_TEST_CRASH", "1")
    with durable(build_crashing(), url=db_url, tenant="acme", lease_seconds=1, remember_runs=False,
                 trace=False) as runner:
        for i in range(RUNS):
            with pytest.raises(Crash):
                runner.invoke({"topic": f"t{i}", "answers": [], "done": False}, thread_id=f"th{i}", run_id=f"r{i}")
        assert {r.status for r in runner.ledger.runs("acme", limit=RUNS)} == {RunStatus.RUNNING}
    monkeypatch.delenv("SUTRAM_TEST_CRASH")
    time.sleep(1.1)  # every lease has expired: the runs' "worker" is dead
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, db_url, f"w{n}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(WORKERS)]
    resumed: dict[str, list[tuple[str, str]]] = {}
    for n, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        resumed[f"w{n}"] = [tuple(x) for x in json.loads(out)]
    everyone = [run_id for mine in resumed.values() for run_id, _ in mine]
    assert sorted(everyone) == sorted(f"r{i}" for i in range(RUNS))  # each run resumed by exactly one worker
    assert {status for mine in resumed.values() for _, status in mine} == {"completed"}
    assert sum(1 for mine in resumed.values() if mine) >= 2, resumed  # the backlog was shared
    with durable(build_crashing(), url=db_url, tenant="acme", remember_runs=False, trace=False) as runner:
        runs = runner.ledger.runs("acme", limit=RUNS + 1)
        assert len(runs) == RUNS and all(r.status is RunStatus.COMPLETED and r.attempts == 2 for r in runs)
        assert {r.run_id: r.executor_id for r in runs} == {rid: w for w, mine in resumed.items() for rid, _ in mine}
    # the three model calls of each run were made once, before the "crash"; none after
    made = Counter(calls.read_text().splitlines())
    assert len(made) == 3 * RUNS and set(made.values()) == {1}
