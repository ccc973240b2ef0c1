"""One run, one identity: a durable run's ledger id and the trace ids of its executions name
each other in the CLI (``sutram runs``, ``sutram runs show <either id>``) and in the budget
interrupt; the runs list shows the ledger's paused/failed states and filters by them; the run
is named after its graph. On SQLite and PostgreSQL (the ledger join reads JSON per dialect)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sutram_adapters.cli import main
from sutram_adapters.langgraph.durable import BUDGET_INTERRUPT, durable
from sutram_core.runs import Budget
from tests.durable_graph import build, build_saga

START = {"topic": "tea", "answers": [], "done": False}


@pytest.fixture
def ledger(db_url: str, calls: Path) -> str:
    """Three durable runs of tenant acme: completed, paused on its budget, failed."""
    with durable(build(), url=db_url, tenant="acme", name="payments", remember_runs=False) as runner:
        runner.invoke(START, thread_id="t-done", run_id="run-done")
        runner.invoke({**START, "topic": "coffee"}, thread_id="t-paused", run_id="run-paused",
                      budget=Budget(max_tokens=5))
    with durable(build(), url=db_url, tenant="globex", remember_runs=False) as runner:
        runner.invoke(START, thread_id="t-globex", run_id="run-globex")
    with durable(build_saga(), url=db_url, tenant="acme", remember_runs=False) as runner:
        with pytest.raises(ValueError):
            runner.invoke({**START, "topic": "fail"}, thread_id="t-failed", run_id="run-failed")
    return db_url


def runs_json(url: str, capsys: Any, *extra: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["runs", "--url", url, "--tenant", "acme", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_runs_list_names_the_durable_run_and_its_ledger_state(ledger: str, capsys: Any) -> None:
    by_durable = {r["durable_run_id"]: r for r in runs_json(ledger, capsys)}
    assert {k: (v["status"], v["trace_status"]) for k, v in by_durable.items()} == {
        "run-done": ("ok", "ok"), "run-paused": ("paused", "ok"), "run-failed": ("failed", "error")}
    assert by_durable["run-done"]["name"] == by_durable["run-paused"]["name"] == "payments"  # durable(name=...)
    assert by_durable["run-failed"]["name"] == "LangGraph"  # an unnamed graph keeps LangGraph's own name


@pytest.mark.parametrize(("status", "expected"), [("paused", ["run-paused"]), ("failed", ["run-failed"]),
                                                   ("ok", ["run-done"]), ("cancelled", [])])
def test_runs_filter_by_ledger_state(ledger: str, capsys: Any, status: str, expected: list[str]) -> None:
    assert [r["durable_run_id"] for r in runs_json(ledger, capsys, "--status", status)] == expected


def test_runs_show_takes_either_id(ledger: str, capsys: Any) -> None:
    (paused,) = runs_json(ledger, capsys, "--status", "paused")
    shown = []
    for run_id in ("run-paused", paused["run_id"]):
        assert main(["runs", "show", run_id, "--url", ledger, "--tenant", "acme", "--json"]) == 0
        shown.append(json.loads(capsys.readouterr().out))
    assert shown[0] == shown[1]
    assert shown[0]["run_id"] == "run-paused" and shown[0]["traces"] == [paused["run_id"]]
    assert shown[0]["status"] == "paused"
    assert main(["runs", "show", "run-paused", "--url", ledger, "--tenant", "acme"]) == 0
    text = capsys.readouterr().out
    assert "max_tokens 5" in text and "{" not in text  # the budget in words, not a dict
    assert main(["runs", "show", "nope", "--url", ledger, "--tenant", "acme"]) == 2
    assert "no durable run 'nope'" in capsys.readouterr().err


def test_the_budget_interrupt_names_its_run(ledger: str) -> None:
    with durable(build(), url=ledger, tenant="acme", name="payments", remember_runs=False) as runner:
        state = runner.graph.get_state({"configurable": {"thread_id": "t-paused"}})
        (value,) = [i.value for task in state.tasks for i in task.interrupts]
        assert value["type"] == BUDGET_INTERRUPT and value["run_id"] == "run-paused"


def test_runs_and_trace_find_every_tenant_by_default(ledger: str, capsys: Any) -> None:
    capsys.readouterr()
    assert main(["runs", "--url", ledger, "--json"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert sorted(r["tenant_id"] for r in every) == ["acme", "acme", "acme", "globex"]
    (globex,) = [r for r in every if r["tenant_id"] == "globex"]
    for run_id in (globex["run_id"], "run-globex"):  # a trace id, a durable run's id
        assert main(["trace", run_id, "--url", ledger, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["attributes"]["sutram.tenant.id"] == "globex"
    assert main(["runs", "show", "run-globex", "--url", ledger, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tenant"] == "globex"
    assert main(["trace", "run-globex", "--url", ledger, "--tenant", "acme"]) == 1  # a tenant named is kept
    assert "no run 'run-globex' for tenant 'acme'" in capsys.readouterr().err
