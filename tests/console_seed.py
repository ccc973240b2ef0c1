"""A database for the console tests: two tenants, durable runs (completed, paused on a
budget, a fork), traces, checkpoints and memories."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sutram_adapters.langgraph.durable import durable
from sutram_core.memory import MemoryStore
from sutram_core.runs import Budget
from tests.durable_graph import build

START = {"topic": "tea", "answers": [], "done": False}


@dataclass
class Seeded:
    completed_run: str
    paused_run: str
    thread: str
    fork: str
    first_checkpoint: str


def seed(url: str) -> Seeded:
    """Fill ``url`` (model calls are logged to a temporary file)."""
    os.environ.setdefault("SUTRAM_TEST_CALL_LOG", str(Path(tempfile.mkdtemp()) / "calls.log"))
    os.environ.setdefault("SUTRAM_TEST_KILL_MARKER", str(Path(tempfile.mkdtemp()) / "never"))
    with durable(build(), url=url, tenant="acme", remember_runs=False) as runner:
        runner.invoke(START, thread_id="tea-thread", run_id="run-tea")
        runner.invoke({**START, "topic": "coffee"}, thread_id="coffee-thread", run_id="run-coffee",
                      budget=Budget(max_tokens=5))
        history = list(runner.graph.get_state_history({"configurable": {"thread_id": "tea-thread"}}))
        before = next(s for s in history if s.next == ("research",)).config["configurable"]["checkpoint_id"]
        fork = runner.fork("tea-thread", before, values={"topic": "matcha"}, new_thread_id="matcha-thread")
        runner.invoke(None, thread_id=fork, run_id="run-matcha")
    with durable(build(), url=url, tenant="globex", remember_runs=False) as runner:
        runner.invoke({**START, "topic": "secret-globex-topic"}, thread_id="globex-thread", run_id="run-globex")
    with MemoryStore.from_url(url, tenant="acme") as memory:
        memory.put(("users", "u1"), "drink", {"text": "Ana prefers oat milk in her tea"},
                   provenance={"run_id": "run-tea", "thread_id": "tea-thread"})
        memory.put(("users", "u1"), "city", {"text": "Ana lives in Lisbon"})
    with MemoryStore.from_url(url, tenant="globex") as memory:
        memory.put(("users", "g1"), "drink", {"text": "Globex secret: the CEO drinks oat milk too"})
    return Seeded("run-tea", "run-coffee", "tea-thread", fork, history[-1].config["configurable"]["checkpoint_id"])
