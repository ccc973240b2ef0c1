"""Every cookbook recipe runs (offline, fake models) and leaves its traces in the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sutram_core.traces import open_trace_store

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p.name for p in (ROOT / "cookbook").glob("*.py") if not p.name.startswith("_"))


def _run(recipe: str, tmp_path: Path, url: str | None = None) -> tuple[str, str]:
    url = url or f"sqlite:///{tmp_path / 'cookbook.db'}"
    env = {**os.environ, "SUTRAM_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run([sys.executable, str(ROOT / "cookbook" / recipe)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return url, proc.stdout


def test_every_recipe_is_listed_in_the_cookbook_readme() -> None:
    readme = (ROOT / "cookbook" / "README.md").read_text()
    assert RECIPES and all(f"`{r}`" in readme for r in RECIPES)


def test_trace_existing_chain(tmp_path: Path) -> None:
    url, out = _run("trace_existing_chain.py", tmp_path)
    assert "(fake model)" in out and "espresso grinder" in out
    with open_trace_store(url) as store:
        runs = store.runs("default")
        assert [r.name for r in runs] == ["LangGraph", "RunnableSequence"]
        assert all(r.status == "ok" and r.input_tokens > 0 for r in runs)
        assert runs[0].thread_id == "cookbook-agent"
        kinds = {s.kind for s in store.run_spans("default", runs[0].run_id)}
        assert {"workflow", "node", "llm", "tool"} <= kinds


@pytest.mark.parametrize("recipe", ["llamaindex_tracing.py"])
def test_llamaindex_tracing(recipe: str, tmp_path: Path) -> None:
    url, out = _run(recipe, tmp_path)
    assert "order_desk" in out and "tokens" in out  # the run is named after the agent
    with open_trace_store(url) as store:
        (run,) = store.runs("acme")
        spans = store.run_spans("acme", run.run_id)
        assert run.thread_id == "cookbook-llamaindex"
        assert sum(s.kind == "llm" for s in spans) == 2 and sum(s.kind == "tool" for s in spans) == 1


def test_langgraph_long_term_memory(tmp_path: Path) -> None:
    url, out = _run("langgraph_long_term_memory.py", tmp_path)
    friday = [line for line in out.splitlines() if "memories used" in line][-1]
    assert "hiking in the Alps" in friday and "Geneva" in friday  # learned on another thread
    from sutram_core.memory import MemoryStore

    with MemoryStore.from_url(url, tenant="default", embedder=False) as store:
        assert store.count(("users", "u42", "facts")) == 2


def test_llamaindex_agent_memory_recalls_across_processes(tmp_path: Path) -> None:
    _, out = _run("llamaindex_agent_memory.py", tmp_path)
    lines = [line for line in out.splitlines() if "agent:" in line]
    pids = {line.split("pid ")[1].split("]")[0] for line in lines}
    assert len(lines) == 2 and len(pids) == 2
    assert "oat milk" in lines[1] and lines[1].startswith("[friday")


def test_multi_tenant_memory(tmp_path: Path) -> None:
    _, out = _run("multi_tenant_memory.py", tmp_path)
    assert "acme: ['Enterprise plan" in out and "globex: ['Starter plan" in out
    assert "before the change: Main contact: Dana (CTO)" in out
    assert "globex sees acme's procedure? False" in out


def test_crash_proof_agent(tmp_path: Path) -> None:
    _, out = _run("crash_proof_agent.py", tmp_path)
    calls = [line for line in out.splitlines() if "[pid" in line and "dying" not in line]
    worker, recovery = calls[:2], calls[2:]
    assert all("] made" in line for line in worker) and "exited with -9" in out
    assert [("from the journal" in line) for line in recovery] == [True, True, False, False]
    assert "completed after 2 attempts" in out


def test_llamaindex_crash_proof_agent(tmp_path: Path) -> None:
    _, out = _run("llamaindex_crash_proof_agent.py", tmp_path)
    made = [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith("[pid") and " made" in line]
    # the worker: the model's tool choice and the refund; the recovery: only the answer
    assert made == ["model call made: 'Please refund my order A-1042.'", "refund of A-1042 made",
                    "model call made: 'refunded A-1042'"]
    assert "exited with -9" in out and "completed after 2 attempts" in out


def test_budgets(tmp_path: Path) -> None:
    _, out = _run("budgets.py", tmp_path)
    assert "-> paused: budget: max_tokens reached" in out and "-> paused: budget: max_steps reached: 1 of 1" in out
    assert out.count("from the journal") == 2 and "-> completed after resume" in out


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_multi_worker_recovery(db_url: str, tmp_path: Path) -> None:
    _, out = _run("multi_worker_recovery.py", tmp_path, db_url)
    assert "killed the worker with 12 runs in flight" in out
    assert "12 resumptions for 12 runs, 12 distinct; completed: 12" in out
    assert sum(1 for line in out.splitlines() if line.startswith("recoverer-")) == 3


def test_saga_compensation(tmp_path: Path) -> None:
    _, out = _run("saga_compensation.py", tmp_path)
    atlantis = out.split("trip to Atlantis")[1]
    lines = [line.strip() for line in atlantis.splitlines()]
    assert lines.index("release room Atlantis-412") < next(i for i, x in enumerate(lines) if x.startswith("refund"))
    assert "compensating again does nothing: []" in out and "refund" not in out.split("trip to Atlantis")[0]


def test_fork_and_diff(tmp_path: Path) -> None:
    _, out = _run("fork_and_diff.py", tmp_path)
    text = " ".join(out.split())
    assert "office-copy paid for 0 new call(s)" in text
    assert "office-investors paid for 1 new call(s)" in text and "3 call(s)" in text
