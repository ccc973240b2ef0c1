"""Four worker processes share a backlog of 50 interrupted LlamaIndex runs on PostgreSQL:
each run is resumed by exactly one worker and completes with the result of an uninterrupted
run; a call is made again only if the dead process was inside it (see the test)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sutram_adapters.llama_index.durable import durable_workflow
from sutram_core.runs import RunStatus
from tests import kill_harness_llama as harness

ROOT = Path(__file__).resolve().parents[1]
RUNS = 50
WORKERS = 4

# one process starts every run at once and dies (SIGKILL) before its 101st call (or the
# first after it at which every tool call it made is journaled): the runs are left at every
# stage, each "running" with a lease nobody renews
_CRASHING = """
import asyncio, sys
from tests import kill_harness_llama as harness
from sutram_adapters.llama_index.durable import durable_workflow
from sutram_core.backends.sql.database import Database

async def main():
    harness._DB[:] = [Database(sys.argv[1])]  # a kill waits for the journal to hold every tool call made
    runners = {k: durable_workflow(harness.build(k), url=sys.argv[1], tenant=harness.TENANT, lease_seconds=1,
                                   trace=False) for k in ("flow", "agent")}
    await asyncio.gather(*(runners[harness.kind_of(i)].run(run_id=f"run-{i}", **harness.start(harness.kind_of(i), i))
                           for i in range(int(sys.argv[2]))))

asyncio.run(main())
"""

_WORKER = """
import asyncio, json, sys
from tests import kill_harness_llama as harness
from sutram_adapters.llama_index.durable import durable_workflow

async def main():
    mine = []
    runners = [durable_workflow(harness.build(k), url=sys.argv[1], tenant=harness.TENANT, lease_seconds=5,
                                executor_id=sys.argv[2], trace=False) for k in ("flow", "agent")]
    while True:
        got = [r for runner in runners for r in await runner.recover(limit=1)]
        if not got:
            break
        mine += [(r.run_id, r.status.value) for r in got]
    print(json.dumps(mine))

asyncio.run(main())
"""


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_four_workers_recover_fifty_llama_index_runs_each_exactly_once(db_url: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SUTRAM_TEST_CALL_LOG": str(calls),
           "SUTRAM_TEST_KILL_LOG": str(tmp_path / "kills.log")}
    crash = subprocess.run([sys.executable, "-c", _CRASHING, db_url, str(RUNS)], cwd=ROOT, timeout=300,
                           env={**env, "SUTRAM_TEST_KILL_AT": "101"}, capture_output=True, text=True)
    assert crash.returncode == -9, crash.stderr[-2000:]
    before = Counter(calls.read_text().splitlines())
    time.sleep(1.1)  # every lease has expired: the runs' worker is dead

    async def errors() -> dict[str, str | None]:
        runner = durable_workflow(harness.build("flow"), url=db_url, tenant=harness.TENANT, trace=False)
        found = {r.run_id: r.error for r in runner.ledger.runs(harness.TENANT, limit=999)
                 if r.status is not RunStatus.COMPLETED}
        runner.close()
        return found

    async def statuses() -> dict[str, tuple[RunStatus, int, str | None]]:
        runner = durable_workflow(harness.build("flow"), url=db_url, tenant=harness.TENANT, trace=False)
        found = {r.run_id: (r.status, r.attempts, r.executor_id) for r in runner.ledger.runs(harness.TENANT, limit=999)}
        runner.close()
        return found

    left = asyncio.run(statuses())
    assert len(left) == RUNS and {s for s, _, _ in left.values()} == {RunStatus.RUNNING}

    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, db_url, f"w{n}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(WORKERS)]
    resumed: dict[str, list[tuple[str, str]]] = {}
    for n, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        resumed[f"w{n}"] = [(str(a), str(b)) for a, b in json.loads(out.strip().splitlines()[-1])]
    everyone = [run_id for mine in resumed.values() for run_id, _ in mine]
    assert sorted(everyone) == sorted(f"run-{i}" for i in range(RUNS))  # each resumed by exactly one worker
    assert {status for mine in resumed.values() for _, status in mine} == {"completed"}, asyncio.run(errors())
    assert sum(1 for mine in resumed.values() if mine) >= 2, resumed  # the backlog was shared

    ended = asyncio.run(statuses())
    assert all(status is RunStatus.COMPLETED and attempts == 2 for status, attempts, _ in ended.values())
    assert {rid: executor for rid, (_, _, executor) in ended.items()} == {
        rid: w for w, mine in resumed.items() for rid, _ in mine}
    made = Counter(calls.read_text().splitlines())
    assert sorted(made) == sorted(c for i in range(RUNS) for c in harness.expected_calls(i))
    # the process died only once every tool call it had made was journaled (harness), so no
    # tool call is made again. A model call is not awaited so: with 50 runs in flight, one
    # can be caught between its answer and its journal entry (the window no journal closes),
    # and such a call may be made again, once, and only if the dead process made it
    twice = [c for c, n in made.items() if n > 1]
    assert not [c for c in twice if c.startswith("tool ")], (twice, _journal(db_url, twice))
    assert all(made[c] == 2 and before[c] == 1 for c in twice), (twice, _journal(db_url, twice))
    assert len(twice) <= 2, (twice, _journal(db_url, twice))
    assert sum(before.values()) >= 100  # the crash fell after 100 calls (or a few more), mid-flight

    async def results() -> None:
        for kind in ("flow", "agent"):
            runner = durable_workflow(harness.build(kind), url=db_url, tenant=harness.TENANT, trace=False)
            for i in range(RUNS):
                if harness.kind_of(i) == kind:
                    assert str(await runner.result(f"run-{i}")) == harness.expected_result(i)
            runner.close()

    asyncio.run(results())


def _journal(url: str, calls: list[str]) -> list[tuple[str, ...]]:
    """The journal entries of the runs whose calls were made twice (for the failure message)."""
    import sqlalchemy as sa

    runs = sorted({"run-" + c.split()[2].split("-")[0][1:] if c.startswith("tool") else "run-" + c.split()[1][1:]
                   for c in calls})
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(str(x)[-22:] for x in row) for row in conn.execute(sa.text(
                "SELECT task_id, name FROM sutram_journal WHERE thread_id IN :r "
                "ORDER BY created_at").bindparams(sa.bindparam("r", expanding=True)), {"r": runs})]
    finally:
        engine.dispose()
