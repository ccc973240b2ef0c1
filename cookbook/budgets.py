"""Token, cost and step budgets: a run pauses instead of overspending, and resumes later.

    python cookbook/budgets.py

``runner.invoke(..., budget=Budget(max_tokens=..., max_cost_usd=..., max_steps=...))``
checks the budget before each node and each model call that is really made. When it is
used up, the run pauses at a LangGraph interrupt carrying the budget state: nothing is
lost, the ledger says why (``sutram runs show RUN_ID``), and ``runner.resume(run_id,
budget=...)`` continues from where it stopped. Calls made before the pause are answered
from the journal, never paid twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _research import graph

from sutram_adapters.langgraph import durable
from sutram_core import Budget


def main() -> None:
    with durable(graph, tenant="acme") as runner:
        print("run 1: Budget(max_tokens=40)")
        runner.invoke({"question": "Which supplier should we pick?"}, thread_id="budget-1", run_id="budget-1",
                      budget=Budget(max_tokens=40))
        run = runner.ledger.get("acme", "budget-1")
        print(f"  -> {run.status.value}: {run.pause_reason}; spent {run.spend.tokens} tokens, "
              f"${run.spend.cost_usd:.6f}, {run.spend.steps} steps")
        print("  resume with Budget(max_tokens=10_000, max_cost_usd=0.05)")
        runner.resume("budget-1", budget=Budget(max_tokens=10_000, max_cost_usd=0.05))
        run = runner.ledger.get("acme", "budget-1")
        print(f"  -> {run.status.value}; spent {run.spend.tokens} tokens, ${run.spend.cost_usd:.6f}, "
              f"{run.spend.steps} steps")

        print("run 2: Budget(max_steps=1): one node, then a pause before the next")
        runner.invoke({"question": "Is the Q3 plan realistic?"}, thread_id="budget-2", run_id="budget-2",
                      budget=Budget(max_steps=1))
        run = runner.ledger.get("acme", "budget-2")
        print(f"  -> {run.status.value}: {run.pause_reason}")
        runner.resume("budget-2", budget=Budget(max_steps=10))
        print(f"  -> {runner.ledger.get('acme', 'budget-2').status.value} after resume")
    print("inspect them: sutram runs show budget-1 --tenant acme")


if __name__ == "__main__":
    main()
