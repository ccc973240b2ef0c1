"""Workers SIGKILLed at seeded random calls of durable LlamaIndex runs (tests/kill_harness_llama.py:
a custom three-step workflow with parallel durable tools and a Context store, and a
FunctionAgent with parallel tool calls): every run ends with the result of an uninterrupted
run, each model and tool call is made exactly once, nothing is left running or paused.

SUTRAM_KILL_SOAK=N multiplies the number of runs (a longer soak)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import pytest

from sutram_adapters.llama_index.durable import durable_workflow
from sutram_core.runs import RunStatus
from tests import kill_harness
from tests import kill_harness_llama as harness

ROOT = Path(__file__).resolve().parents[1]
RUNS = 18 * int(os.environ.get("SUTRAM_KILL_SOAK", "1"))
MIN_KILLS = 30 * int(os.environ.get("SUTRAM_KILL_SOAK", "1"))  # per backend


def test_killed_workers_leave_every_llama_index_run_complete_and_every_call_made_once(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_TEST_CALL_LOG", str(tmp_path / "reference.log"))  # this process's own calls
    log, died = tmp_path / "calls.log", tmp_path / "kills.log"
    kills, workers = kill_harness.kill_until_done("tests.kill_harness_llama", db_url, RUNS, 20261130, tmp_path, ROOT)
    assert kills >= MIN_KILLS, f"only {kills} kills in {workers} workers"
    killed = died.read_text().splitlines()
    # kills fell before model calls and inside tools, of both shapes
    assert {c.split()[0] for c in killed} == {"llm", "tool"}
    assert {harness.kind_of(int(c.split()[1 if c.startswith("llm") else 2].split("-")[0][1:])) for c in killed} \
        == {"flow", "agent"}

    counts = Counter(log.read_text().splitlines())
    assert all(n == 1 for n in counts.values()), [line for line, n in counts.items() if n > 1][:5]
    assert sorted(counts) == sorted(c for i in range(RUNS) for c in harness.expected_calls(i))

    async def check() -> None:
        for kind in ("flow", "agent"):
            runner = durable_workflow(harness.build(kind), url=db_url, tenant=harness.TENANT, trace=False)
            mine = [i for i in range(RUNS) if harness.kind_of(i) == kind]
            runs = [r for r in runner.ledger.runs(harness.TENANT, limit=1000) if r.graph_name == runner.name]
            assert sorted(r.run_id for r in runs) == sorted(f"run-{i}" for i in mine)
            assert all(r.status is RunStatus.COMPLETED for r in runs), [(r.run_id, r.status) for r in runs]
            for i in mine:
                assert str(await runner.result(f"run-{i}")) == harness.expected_result(i)
            runner.close()

    asyncio.run(check())
    print(f"{kills} kills over {workers} worker processes, {RUNS} runs; "
          f"before: {dict(Counter(c.split()[0] for c in killed))}")
