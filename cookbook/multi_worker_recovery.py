"""Several worker processes share the runs a dead worker left behind; each run is resumed
by exactly one of them. Meant for PostgreSQL (SUTRAM_URL=postgresql://...); on SQLite it
works too, with the writers taking turns.

    SUTRAM_URL=postgresql://user@localhost/app python cookbook/multi_worker_recovery.py

A worker process starts 12 runs at once (threads) and is SIGKILLed while they are in
flight. Three recovery workers then loop on ``runner.recover(limit=1)``: each claims an
expired run with a conditional update (PostgreSQL: ``FOR UPDATE SKIP LOCKED``), resumes
it from its checkpoint, and takes the next. A worker whose lease was taken over can no
longer write anything for that run (fencing). In production, every worker process runs
this loop (or ``sutram recover --graph module:graph``) next to its normal work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _research import graph

from sutram_adapters.langgraph import durable

RUNS = 12
LEASE = 2.0


def doomed_worker(prefix: str) -> None:
    """Start every run at once; the parent kills this process while they are in flight."""
    with durable(graph, tenant="acme", lease_seconds=LEASE) as runner:
        with ThreadPoolExecutor(RUNS) as pool:
            for i in range(RUNS):
                pool.submit(runner.invoke, {"question": f"Market question {i}?"}, thread_id=f"{prefix}-{i}",
                            run_id=f"{prefix}-{i}")


def recovery_worker(name: str) -> None:
    mine = []
    with durable(graph, tenant="acme", lease_seconds=LEASE, executor_id=name) as runner:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = runner.recover(limit=1)
            mine += [r.run_id for r in got]
            if not got and not runner.ledger.runs("acme", status="running", limit=1):
                break  # nothing left to take over
            if not got:
                time.sleep(0.2)  # runs whose lease has not expired yet
    print(json.dumps({"worker": name, "resumed": mine}), flush=True)


def main() -> None:
    prefix = f"mw{os.getpid()}"
    env = {**os.environ, "SUTRAM_COOKBOOK_SLOW": "0.3"}
    doomed = subprocess.Popen([sys.executable, __file__, "--doomed", prefix], env=env, stdout=subprocess.DEVNULL)
    with durable(graph, tenant="acme") as runner:
        while sum(r.run_id.startswith(prefix) for r in runner.ledger.runs("acme", status="running")) < RUNS:
            time.sleep(0.05)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
        print(f"killed the worker with {RUNS} runs in flight")
        workers = [subprocess.Popen([sys.executable, __file__, "--recover", f"recoverer-{n}"], stdout=subprocess.PIPE,
                                    text=True, env={**os.environ, "SUTRAM_COOKBOOK_SLOW": "0.05"}) for n in range(3)]
        reports = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
        for report in reports:
            print(f"{report['worker']} resumed {len(report['resumed'])} run(s)")
        resumed = [r for report in reports for r in report["resumed"]]
        runs = [runner.ledger.get("acme", f"{prefix}-{i}") for i in range(RUNS)]
    print(f"{len(resumed)} resumptions for {RUNS} runs, {len(set(resumed))} distinct; "
          f"completed: {sum(r.status.value == 'completed' for r in runs)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--doomed"]:
        doomed_worker(sys.argv[2])
    elif sys.argv[1:2] == ["--recover"]:
        recovery_worker(sys.argv[2])
    else:
        main()
