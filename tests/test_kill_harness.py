"""Workers SIGKILLed at seeded random calls, over every shape of tests/kill_harness.py (sync
invoke and stream, async ainvoke and astream with async nodes, a ToolNode's parallel tool
calls, a create_react_agent agent, a subgraph, a Send fan-out): every run ends like an uninterrupted one, each model and
tool call is made exactly once, no checkpoint is lost or doubled, no run is left.

SUTRAM_KILL_SOAK=N multiplies the number of runs (a longer soak)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import pytest

from sutram_adapters.langgraph.durable import durable
from sutram_core.runs import RunStatus
from tests import kill_harness

ROOT = Path(__file__).resolve().parents[1]
RUNS = 6 * int(os.environ.get("SUTRAM_KILL_SOAK", "1"))
MIN_KILLS = 45 * int(os.environ.get("SUTRAM_KILL_SOAK", "1"))  # per backend


def _shape(call: str) -> str:
    """'sync plan', 'async tool', ...: the graph and the shape a logged call belongs to."""
    if call.startswith("tool "):  # tool charge t3-a (the ToolNode), tool refund t3-x (the agent)
        topic, shape = call.split()[2].split("-")[0], "tool" if call.split()[1] == "charge" else "agent"
    else:  # llm t3/stream/1
        topic, shape = call.split()[1].split("/")[:2]
    return f"{'async' if int(topic[1:]) % 2 else 'sync'} {shape}"


def test_killed_workers_leave_every_run_complete_and_every_call_made_once(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_TEST_CALL_LOG", str(tmp_path / "reference.log"))  # this process's own calls
    log, died = tmp_path / "calls.log", tmp_path / "kills.log"
    kills, workers = kill_harness.kill_until_done("tests.kill_harness", db_url, RUNS, 20261129, tmp_path, ROOT)
    assert kills >= MIN_KILLS, f"only {kills} kills in {workers} workers"
    # the kills fell in every shape, on both graphs (odd topics run on the async graph), and
    # inside streams too
    killed = died.read_text().splitlines()
    where = Counter(_shape(call) for call in killed)
    assert any(call.endswith("(mid-stream)") for call in killed)
    shapes = {f"{k} {s}" for k in ("sync", "async") for s in ("plan", "stream", "tool", "agent", "sub", "leaf")}
    assert set(where) == shapes, where

    counts = Counter(log.read_text().splitlines())
    assert all(n == 1 for n in counts.values()), [line for line, n in counts.items() if n > 1][:5]
    assert sorted(counts) == sorted(c for i in range(RUNS) for c in kill_harness.expected_calls(f"t{i}"))

    for kind in ("sync", "async"):
        tenant = kill_harness.TENANTS[kind]
        with durable(kill_harness.build(kind), url=db_url, tenant=tenant, remember_runs=False) as runner:
            runs = runner.ledger.runs(tenant, limit=1000)
            mine = [i for i in range(RUNS) if (i % 2 == 0) == (kind == "sync")]
            assert sorted(r.run_id for r in runs) == sorted(f"run-{i}" for i in mine)
            assert all(r.status is RunStatus.COMPLETED for r in runs), [(r.run_id, r.status) for r in runs]
            clean = durable(kill_harness.build(kind), url=db_url, tenant=f"clean-{kind}", remember_runs=False)
            reference = {"configurable": {"thread_id": "reference"}}
            if kind == "sync":
                clean.invoke(kill_harness.start(0), thread_id="reference", run_id="reference")
            else:
                asyncio.run(clean.ainvoke(kill_harness.start(0), thread_id="reference", run_id="reference"))
            expected_checkpoints = len(list(clean.saver.list(reference)))
            clean.close()
            for i in mine:
                config = {"configurable": {"thread_id": f"thread-{i}"}}
                state = runner.graph.get_state(config).values
                assert sorted(state["notes"]) == kill_harness.expected_notes(f"t{i}")
                assert state["found"] == kill_harness.expected_found(f"t{i}")
                assert state["agent"] == kill_harness.expected_agent(f"t{i}")
                assert sorted(str(m.content) for m in state["messages"] if m.type == "tool") == [
                    f"charged t{i}-{o}" for o in "abc"]
                assert len(list(runner.saver.list(config))) == expected_checkpoints
    print(f"{kills} kills over {workers} worker processes, {RUNS} runs "
          f"({sum(c.endswith('(mid-stream)') for c in killed)} mid-stream); where: {dict(sorted(where.items()))}")
