"""A worker dies in the middle of a node; another process finishes the run, and not one of
the model calls that had completed is paid for again.

    python cookbook/crash_proof_agent.py

The only change to the app is ``durable(graph)``. A child process runs the graph and is
SIGKILLed before the third model call of the ``research`` node (two calls done). This
process then calls ``runner.recover()``: once the dead worker's lease has expired, the run
is resumed from its last checkpoint, the two completed calls are answered from the call
journal, and the run completes. LangGraph alone would re-run the whole node and pay for
both calls again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _research import graph

from sutram_adapters.langgraph import durable

LEASE = 2.0  # seconds; a dead worker's run can be taken over this long after its last heartbeat


def worker(run_id: str) -> None:
    with durable(graph, tenant="acme", lease_seconds=LEASE) as runner:
        runner.invoke({"question": "Should we expand to Lisbon?"}, thread_id=run_id, run_id=run_id)


def main() -> None:
    run_id = f"crash-{os.getpid()}"
    print("worker: starting the run (it will die before its 3rd model call)")
    child = subprocess.run([sys.executable, __file__, "--worker", run_id],
                           env={**os.environ, "SUTRAM_COOKBOOK_DIE_AT": "3"})
    print(f"worker exited with {child.returncode} (-9: SIGKILL)")
    with durable(graph, tenant="acme", lease_seconds=LEASE) as runner:
        print(f"recovery: run is {runner.ledger.get('acme', run_id).status.value}; waiting for its lease ...")
        started = time.monotonic()
        while not (resumed := runner.recover()):
            time.sleep(0.2)
        run = resumed[0]
        print(f"recovery: {run.run_id} {run.status.value} after {run.attempts} attempts "
              f"({time.monotonic() - started:.1f} s of waiting); spend {run.spend.tokens} tokens, "
              f"${run.spend.cost_usd:.6f}")
        answer = runner.graph.get_state({"configurable": {"thread_id": run_id}}).values["answer"]
    print("answer:", answer)
    print(f"inspect it: sutram runs show {run_id} --tenant acme")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
    else:
        main()
