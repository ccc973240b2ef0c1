"""durable(graph): a run whose worker is SIGKILLed mid-node is recovered by another process,
and the model calls that completed before the kill are not made again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sutram_adapters.langgraph.durable import durable, graph_version
from sutram_core.errors import InvalidRunError
from sutram_core.runs import RunStatus
from tests.durable_graph import build

ROOT = Path(__file__).resolve().parents[1]

_WORKER = """
import sys
from sutram_adapters.langgraph.durable import durable
from tests.durable_graph import build
runner = durable(build(), url=sys.argv[1], tenant="acme", lease_seconds=1)
print(runner.invoke({"topic": "tea", "answers": [], "done": False}, thread_id="t1", run_id="run-1"))
"""


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    calls, marker = tmp_path / "calls.log", tmp_path / "kill.marker"
    monkeypatch.setenv("SUTRAM_TEST_CALL_LOG", str(calls))
    monkeypatch.setenv("SUTRAM_TEST_KILL_MARKER", str(marker))
    return calls, marker


def test_a_killed_run_is_recovered_and_repeats_no_model_call(db_url: str, logs: tuple[Path, Path]) -> None:
    calls, marker = logs
    marker.touch()
    worker = subprocess.run([sys.executable, "-c", _WORKER, db_url], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert worker.returncode == -9, worker.stderr  # SIGKILLed between the 2nd and 3rd call
    assert calls.read_text().splitlines() == ["tea question 0", "tea question 1"]
    time.sleep(1.2)  # the dead worker's lease expires
    with durable(build(), url=db_url, tenant="acme", lease_seconds=1) as runner:
        assert runner.ledger.get("acme", "run-1").status is RunStatus.RUNNING
        seen: list[str] = []
        (recovered,) = runner.recover(on_run=lambda run: seen.append(f"{run.run_id} {run.status.value}"))
        assert recovered.status is RunStatus.COMPLETED and recovered.attempts == 2
        assert seen == ["run-1 completed"]  # told as it ended
        assert runner.recover() == []  # nothing left to recover
        state = runner.graph.get_state({"configurable": {"thread_id": "t1"}}).values
    assert state["done"] and state["answers"] == [f"echo: tea question {i}" for i in range(3)]
    # each question reached the provider exactly once, across both processes
    assert calls.read_text().splitlines() == [f"tea question {i}" for i in range(3)]


def test_an_uninterrupted_run_is_completed_in_the_ledger(db_url: str, logs: tuple[Path, Path]) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        out = runner.invoke({"topic": "cake", "answers": [], "done": False}, thread_id="t2", run_id="r2")
        run = runner.ledger.get("acme", "r2")
        entries = runner.journal.entries("acme", "t2")
    assert out["done"] and run.status is RunStatus.COMPLETED and run.graph_version == graph_version(build())
    assert [e.kind for _, e in entries] == ["llm"] * 3


def test_a_failing_run_is_failed_with_its_error(db_url: str, logs: tuple[Path, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_TEST_CALL_LOG", "/nonexistent-dir/calls.log")  # the model's log write fails
    with durable(build(), url=db_url, tenant="acme") as runner:
        with pytest.raises(FileNotFoundError):
            runner.invoke({"topic": "x", "answers": [], "done": False}, thread_id="t3", run_id="r3")
        run = runner.ledger.get("acme", "r3")
    assert run.status is RunStatus.FAILED and run.error and "FileNotFoundError" in run.error


def test_a_changed_graph_does_not_silently_resume(db_url: str, logs: tuple[Path, Path]) -> None:
    _, marker = logs
    marker.touch()
    subprocess.run([sys.executable, "-c", _WORKER, db_url], cwd=ROOT, capture_output=True, text=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    time.sleep(1.2)
    from langgraph.graph import END, START, StateGraph

    from tests.durable_graph import State, research

    changed = StateGraph(State)
    changed.add_node("research", research)
    changed.add_edge(START, "research")
    changed.add_edge("research", END)
    with durable(changed.compile(), url=db_url, tenant="acme", lease_seconds=1) as runner:
        with pytest.raises(InvalidRunError, match="allow_version_change"):
            runner.recover()
        run = runner.ledger.get("acme", "run-1")
        assert run.status is RunStatus.PAUSED and "graph version changed" in (run.pause_reason or "")


def test_a_budget_pauses_the_run_before_overspending_and_resume_continues(db_url: str,
                                                                        logs: tuple[Path, Path]) -> None:
    from sutram_core.runs import Budget

    calls, _ = logs
    with durable(build(), url=db_url, tenant="acme") as runner:
        out = runner.invoke({"topic": "tea", "answers": [], "done": False}, thread_id="t5", run_id="r5",
                            budget=Budget(max_tokens=10))
        run = runner.ledger.get("acme", "r5")
        assert run.status is RunStatus.PAUSED and "max_tokens reached" in (run.pause_reason or "")
        assert "__interrupt__" in out and run.spend.tokens >= 10 and run.spend.cost_usd > 0
        assert calls.read_text().splitlines() == ["tea question 0"]  # the second call was never made
        final = runner.resume("r5", budget=Budget(max_tokens=10_000))
        run = runner.ledger.get("acme", "r5")
    assert final["done"] and run.status is RunStatus.COMPLETED and run.budget.max_tokens == 10_000
    assert calls.read_text().splitlines() == [f"tea question {i}" for i in range(3)]  # none paid twice


def _flaky_graph(failures: list[BaseException]) -> object:
    """research, then a node that raises the queued errors one per attempt, then finish."""
    from langgraph.graph import END, START, StateGraph

    from tests.durable_graph import State, finish, research

    def flaky(state: State) -> dict[str, object]:
        if failures:
            raise failures.pop(0)
        return {}

    builder = StateGraph(State)
    builder.add_node("research", research)
    builder.add_node("flaky", flaky)
    builder.add_node("finish", finish)
    builder.add_edge(START, "research")
    builder.add_edge("research", "flaky")
    builder.add_edge("flaky", "finish")
    builder.add_edge("finish", END)
    return builder.compile()


class RateLimitError(Exception):
    """Named like the providers' rate-limit errors."""


def test_recoverable_errors_are_retried_from_the_checkpoint(db_url: str, logs: tuple[Path, Path]) -> None:
    calls, _ = logs
    failures: list[BaseException] = [RateLimitError("429"), ConnectionError("reset")]
    with durable(_flaky_graph(failures), url=db_url, tenant="acme", backoff_seconds=0.01) as runner:
        out = runner.invoke({"topic": "tea", "answers": [], "done": False}, thread_id="t6", run_id="r6")
        run = runner.ledger.get("acme", "r6")
    assert out["done"] and run.status is RunStatus.COMPLETED and failures == []
    assert len(calls.read_text().splitlines()) == 3  # the earlier node was not run again


def test_a_persisting_recoverable_error_pauses_the_run_and_resume_finishes_it(
        db_url: str, logs: tuple[Path, Path]) -> None:
    from sutram_core.errors import RunPausedError

    failures: list[BaseException] = [TimeoutError("read timed out")] * 3
    with durable(_flaky_graph(failures), url=db_url, tenant="acme", retries=2, backoff_seconds=0.01) as runner:
        with pytest.raises(RunPausedError, match="resume"):
            runner.invoke({"topic": "tea", "answers": [], "done": False}, thread_id="t7", run_id="r7")
        run = runner.ledger.get("acme", "r7")
        assert run.status is RunStatus.PAUSED and "TimeoutError" in (run.pause_reason or "")
        assert failures == []  # three attempts: the first and two retries
        out = runner.resume("r7")
    assert out["done"] and runner.ledger.get("acme", "r7").status is RunStatus.COMPLETED


def test_a_permanent_error_fails_the_run_at_once_and_keeps_its_state(db_url: str, logs: tuple[Path, Path]) -> None:
    failures: list[BaseException] = [ValueError("bad plan"), ValueError("never reached")]
    with durable(_flaky_graph(failures), url=db_url, tenant="acme", backoff_seconds=0.01) as runner:
        with pytest.raises(ValueError, match="bad plan"):
            runner.invoke({"topic": "tea", "answers": [], "done": False}, thread_id="t8", run_id="r8")
        run = runner.ledger.get("acme", "r8")
        state = runner.graph.get_state({"configurable": {"thread_id": "t8"}})
    assert run.status is RunStatus.FAILED and run.error == "ValueError: bad plan" and len(failures) == 1
    assert len(state.values["answers"]) == 3 and state.next == ("flaky",)  # where it stopped


def test_runs_show_says_where_and_why_and_recover_runs_from_the_command_line(
        db_url: str, logs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from sutram_adapters.cli import main

    _, marker = logs
    failures: list[BaseException] = [ValueError("bad plan")]
    with durable(_flaky_graph(failures), url=db_url, tenant="acme") as runner:
        with pytest.raises(ValueError):
            runner.invoke({"topic": "tea", "answers": [], "done": False}, thread_id="t9", run_id="r9")
    assert main(["runs", "show", "r9", "--tenant", "acme", "--json", "--url", db_url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "failed" and shown["why"] == "ValueError: bad plan"
    assert shown["where"] == "flaky" and shown["journaled_calls"] == 3 and shown["spend"]["tokens"] > 0
    marker.touch()
    subprocess.run([sys.executable, "-c", _WORKER, db_url], cwd=ROOT, capture_output=True, text=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    time.sleep(1.2)
    assert main(["recover", "--graph", "tests.durable_graph:GRAPH", "--tenant", "acme", "--url", db_url]) == 0
    out = capsys.readouterr().out
    assert "run-1  completed" in out and "recovered 1 run(s)" in out


def test_every_run_end_is_remembered_as_an_episode(db_url: str, logs: tuple[Path, Path]) -> None:
    pytest.importorskip("numpy", reason="the memory extra is not installed (make test-lowest installs the base only)")
    from sutram_core.memory import MemoryStore
    from tests.memory_support import WordHashEmbedder

    failures: list[BaseException] = [ValueError("bad plan")]
    with durable(_flaky_graph(failures), url=db_url, tenant="acme", embedder=WordHashEmbedder()) as runner:
        with pytest.raises(ValueError):
            runner.invoke({"topic": "tea", "answers": [], "done": False}, thread_id="t10", run_id="r10")
        runner.invoke({"topic": "tea", "answers": [], "done": False}, thread_id="t11", run_id="r11")
    with MemoryStore.from_url(db_url, tenant="acme", embedder=WordHashEmbedder()) as memory:
        (failed,) = [h.record for h in memory.search("run failed ValueError", namespace=("sutram", "runs"),
                                                     kind="episodic", limit=1)]
        done = memory.get(("sutram", "runs", "LangGraph"), "r11")
    assert failed.key == "r10" and "failed at node flaky: ValueError: bad plan" in failed.text
    assert failed.provenance.run_id == "r10" and failed.provenance.thread_id == "t10"
    assert done is not None and "completed" in done.text and done.value["status"] == "completed"


def test_a_permanent_failure_runs_the_compensations_newest_first_once(db_url: str, logs: tuple[Path, Path]) -> None:
    from tests.durable_graph import UNDONE, build_saga

    UNDONE.clear()
    with durable(build_saga(), url=db_url, tenant="acme", remember_runs=False) as runner:
        with pytest.raises(ValueError, match="airline"):
            runner.invoke({"topic": "fail", "answers": [], "done": False}, thread_id="s1", run_id="saga-1")
        assert UNDONE == ["release TP1234-12A", "refund ch-420"]
        assert runner.compensate("saga-1") == []  # each compensation runs exactly once
        assert UNDONE == ["release TP1234-12A", "refund ch-420"]
        out = runner.invoke({"topic": "ok", "answers": [], "done": False}, thread_id="s2", run_id="saga-2")
        assert out["done"] and len(UNDONE) == 2  # a completed run keeps its effects


def test_cancelling_a_paused_run_compensates_it(db_url: str, logs: tuple[Path, Path]) -> None:
    from sutram_core.runs import Budget
    from tests.durable_graph import UNDONE

    UNDONE.clear()
    from langgraph.graph import END, START, StateGraph

    from tests.durable_graph import State, book, research

    builder = StateGraph(State)
    builder.add_node("book", book)
    builder.add_node("research", research)
    builder.add_edge(START, "book")
    builder.add_edge("book", "research")
    builder.add_edge("research", END)
    with durable(builder.compile(), url=db_url, tenant="acme", remember_runs=False) as runner:
        runner.invoke({"topic": "ok", "answers": [], "done": False}, thread_id="s3", run_id="saga-3",
                      budget=Budget(max_tokens=5))
        assert runner.ledger.get("acme", "saga-3").status is RunStatus.PAUSED
        cancelled = runner.cancel("saga-3")
    assert cancelled.status is RunStatus.CANCELLED
    assert UNDONE == ["release TP1234-12A", "refund ch-420"]
