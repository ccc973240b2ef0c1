"""The durable runner's other entry points (stream, ainvoke, astream), its traces, step
budgets, repeated budget pauses, and fork + diff; each on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from sutram_adapters.cli import main
from sutram_adapters.langgraph.diff import diff_threads
from sutram_adapters.langgraph.durable import durable
from sutram_core.errors import InvalidRunError
from sutram_core.runs import Budget, RunStatus
from sutram_core.traces import open_trace_store
from tests.durable_graph import LoggedModel, build

START_STATE = {"topic": "tea", "answers": [], "done": False}


def _made(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_stream_yields_each_step_and_completes_the_run(db_url: str, calls: Path) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        chunks = list(runner.stream(START_STATE, thread_id="s1", run_id="rs1", stream_mode="updates"))
        assert [next(iter(c)) for c in chunks] == ["research", "finish"]
        assert runner.ledger.get("acme", "rs1").status is RunStatus.COMPLETED


def test_a_stream_the_caller_stops_reading_is_paused_and_resumes(db_url: str, calls: Path) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        stream = runner.stream(START_STATE, thread_id="s2", run_id="rs2", stream_mode="updates")
        assert next(iter(next(stream))) == "research"
        stream.close()
        run = runner.ledger.get("acme", "rs2")
        assert run.status is RunStatus.PAUSED and "stopped reading" in (run.pause_reason or "")
        out = runner.resume("rs2")
        assert out["done"] and runner.ledger.get("acme", "rs2").status is RunStatus.COMPLETED
    assert _made(calls) == [f"tea question {i}" for i in range(3)]


def test_ainvoke_and_astream_run_durably(db_url: str, calls: Path) -> None:
    async def go() -> tuple[Any, list[Any]]:
        with durable(build(), url=db_url, tenant="acme") as runner:
            out = await runner.ainvoke(START_STATE, thread_id="a1", run_id="ra1")
            chunks = [c async for c in runner.astream({**START_STATE, "topic": "cake"}, thread_id="a2",
                                                      run_id="ra2", stream_mode="updates")]
            statuses = [runner.ledger.get("acme", r).status for r in ("ra1", "ra2")]
            assert statuses == [RunStatus.COMPLETED, RunStatus.COMPLETED]
            return out, chunks

    out, chunks = asyncio.run(go())
    assert out["answers"] == [f"echo: tea question {i}" for i in range(3)]
    assert [next(iter(c)) for c in chunks] == ["research", "finish"]


def test_each_execution_is_traced_under_the_run(db_url: str, calls: Path) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        runner.invoke(START_STATE, thread_id="tr1", run_id="rt1")
    with open_trace_store(db_url) as store:
        (summary,) = store.runs("acme", thread_id="tr1")
        spans = store.run_spans("acme", summary.run_id)
    root = next(s for s in spans if s.parent_id is None)
    assert root.attributes["sutram.run_id"] == "rt1" and summary.status == "ok"
    models = [s for s in spans if s.kind == "llm"]
    assert len(models) == 3 and all(s.input_tokens and s.cost_usd for s in models)
    assert {s.name for s in spans if s.kind == "node"} == {"research", "finish"}


def test_a_step_budget_pauses_before_the_next_node(db_url: str, calls: Path) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        runner.invoke(START_STATE, thread_id="b1", run_id="rb1", budget=Budget(max_steps=1))
        run = runner.ledger.get("acme", "rb1")
        assert run.status is RunStatus.PAUSED and "max_steps reached" in (run.pause_reason or "")
        assert run.spend.steps == 1 and run.spend.seconds > 0
        out = runner.resume("rb1", budget=Budget(max_steps=5))
        assert out["done"] and runner.ledger.get("acme", "rb1").spend.steps == 2
    assert _made(calls) == [f"tea question {i}" for i in range(3)]


def test_a_task_paused_twice_by_its_budget_pauses_again_after_the_first_resume(db_url: str, calls: Path) -> None:
    # each call costs 10 tokens: a limit of 5 stops after one call, 15 after two
    with durable(build(), url=db_url, tenant="acme") as runner:
        runner.invoke(START_STATE, thread_id="b2", run_id="rb2", budget=Budget(max_tokens=5))
        assert _made(calls) == ["tea question 0"]
        runner.resume("rb2", budget=Budget(max_tokens=15))
        run = runner.ledger.get("acme", "rb2")
        assert run.status is RunStatus.PAUSED, "the second resume value must not let the third call through"
        assert _made(calls) == ["tea question 0", "tea question 1"]
        out = runner.resume("rb2", budget=Budget(max_tokens=1_000))
        assert out["done"] and runner.ledger.get("acme", "rb2").status is RunStatus.COMPLETED
    assert _made(calls) == [f"tea question {i}" for i in range(3)]


def test_a_call_that_crosses_the_budget_is_reported_as_an_overshoot(
        db_url: str, calls: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sutram.runs")
    with durable(build(), url=db_url, tenant="acme") as runner:  # each call costs 10 tokens
        runner.invoke(START_STATE, thread_id="b3", run_id="rb3", budget=Budget(max_tokens=5))
        run = runner.ledger.get("acme", "rb3")
    assert run.status is RunStatus.PAUSED and _made(calls) == ["tea question 0"]  # no second call
    assert run.overshoot == "over max_tokens by 5 (10 of 5 tokens)"
    assert any("rb3 went past its budget" in r.getMessage() and "by 5" in r.getMessage() for r in caplog.records)
    assert Budget(max_tokens=10).overshoot(run.spend) is None  # reaching a limit is not going past it
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["runs", "show", "rb3", "--tenant", "acme", "--json", "--url", db_url]) == 0
    assert json.loads(out.getvalue())["overshoot"] == run.overshoot


# -- fork and diff ---------------------------------------------------------------------------


class Plan(TypedDict):
    city: str
    notes: list[str]


def _plan_graph() -> Any:
    """One node, three model calls: the first does not depend on the state, the second does,
    the third does not again (it is made anew in a fork all the same: the task diverged)."""
    def plan(state: Plan) -> dict[str, Any]:
        model = LoggedModel()
        notes = [str(model.invoke([HumanMessage("general travel advice")]).content),
                 str(model.invoke([HumanMessage(f"sights in {state['city']}")]).content),
                 str(model.invoke([HumanMessage("packing list")]).content)]
        return {"notes": notes}

    builder = StateGraph(Plan)
    builder.add_node("plan", plan)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", END)
    return builder.compile()


def _before(runner: Any, thread_id: str, node: str) -> str:
    history = runner.graph.get_state_history({"configurable": {"thread_id": thread_id}})
    return next(s for s in history if s.next == (node,)).config["configurable"]["checkpoint_id"]


def test_a_fork_replays_the_original_calls_from_the_journal(db_url: str, calls: Path) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        original = runner.invoke(START_STATE, thread_id="f1", run_id="rf1")
        forked = runner.fork("f1", _before(runner, "f1", "research"), new_thread_id="f1-copy")
        again = runner.invoke(None, thread_id=forked, run_id="rf1-copy")
        assert runner.ledger.get("acme", "rf1-copy").spend.tokens == 0
    assert again == original
    assert _made(calls) == [f"tea question {i}" for i in range(3)]  # the fork paid for nothing
    found = diff_threads(db_url, "acme", "f1", "f1-copy")
    assert found.state == {} and found.forked_from and found.forked_from["thread_id"] == "f1"
    assert [c.status for c in found.calls] == ["replayed"] * 3
    assert found.cost["b_new"]["tokens"] == 0 and found.cost["b_replayed"]["calls"] == 3


def test_a_fork_with_changed_state_replays_calls_until_their_inputs_differ(db_url: str, calls: Path) -> None:
    with durable(_plan_graph(), url=db_url, tenant="acme") as runner:
        runner.invoke({"city": "Lisbon", "notes": []}, thread_id="p1")
        before = _before(runner, "p1", "plan")
        fork = runner.fork("p1", before, values={"city": "Porto"}, new_thread_id="p1-porto")
        out = runner.invoke(None, thread_id=fork)
    assert out["notes"] == ["echo: general travel advice", "echo: sights in Porto", "echo: packing list"]
    # the first call came from the journal; the second differed, so the rest were made anew
    assert _made(calls) == ["general travel advice", "sights in Lisbon", "packing list", "sights in Porto",
                            "packing list"]
    found = diff_threads(db_url, "acme", "p1", "p1-porto")
    assert set(found.state) == {"city", "notes"} and found.first_divergent_step is not None
    assert [(c.index, c.status) for c in found.calls] == [(0, "replayed"), (1, "new"), (2, "new"),
                                                          (1, "only in A"), (2, "only in A")]
    assert found.cost["b_new"]["calls"] == 2 and found.cost["b_new"]["tokens"] > 0
    out_text = io.StringIO()
    with redirect_stdout(out_text):
        assert main(["diff", "p1", "p1-porto", "--url", db_url, "--tenant", "acme", "--json"]) == 0
    assert json.loads(out_text.getvalue())["cost"] == found.cost
    human = io.StringIO()
    with redirect_stdout(human):
        assert main(["diff", "p1", "p1-porto", "--url", db_url, "--tenant", "acme"]) == 0
    text = " ".join(human.getvalue().split())
    assert "forked from p1" in text and "1 call(s) (10 tokens, $0.000003) were answered from the journal" in text


def test_a_fork_of_a_fork_still_replays_from_the_first_thread(db_url: str, calls: Path) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        runner.invoke(START_STATE, thread_id="g1")
        first = runner.fork("g1", _before(runner, "g1", "research"))
        second = runner.fork(first)
        assert runner.invoke(None, thread_id=second)["done"]
    assert _made(calls) == [f"tea question {i}" for i in range(3)]


def test_forking_what_does_not_exist_says_what_to_do(db_url: str, calls: Path) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        with pytest.raises(InvalidRunError, match="no checkpoint"):
            runner.fork("nothing-here")
        runner.invoke(START_STATE, thread_id="h1")
        runner.fork("h1", new_thread_id="h2")
        with pytest.raises(InvalidRunError, match="already exists"):
            runner.fork("h1", new_thread_id="h2")
    with pytest.raises(InvalidRunError, match="no checkpoints"):
        diff_threads(db_url, "acme", "h1", "missing")


def test_a_run_whose_worker_died_before_its_first_checkpoint_starts_again_from_its_input(
        db_url: str, calls: Path) -> None:
    import time

    with durable(build(), url=db_url, tenant="acme", lease_seconds=0.3) as runner:
        # what invoke records before the graph runs: the worker "dies" right after this
        runner._start("early", None, "r-early", {**START_STATE, "topic": "soup"})
        time.sleep(0.4)
        (recovered,) = runner.recover()
        state = runner.graph.get_state({"configurable": {"thread_id": "early"}}).values
    assert recovered.status is RunStatus.COMPLETED and state["answers"][0] == "echo: soup question 0"


def store_spans(url: str, run_id: str) -> list[Any]:
    with open_trace_store(url) as store:
        return store.run_spans("acme", run_id)


def test_replayed_calls_are_traced_as_replays_that_cost_nothing(db_url: str, calls: Path) -> None:
    with durable(build(), url=db_url, tenant="acme") as runner:
        runner.invoke(START_STATE, thread_id="tr2", run_id="rt2", budget=Budget(max_tokens=5))  # pauses after call 0
        runner.resume("rt2", budget=Budget(max_tokens=1_000))
        spend = runner.ledger.get("acme", "rt2").spend
    with open_trace_store(db_url) as store:
        executions = store.runs("acme", thread_id="tr2")
        spans = [s for e in executions for s in store.run_spans("acme", e.run_id)]
    models = [s for s in spans if s.kind == "llm"]
    replayed = [s for s in models if s.attributes.get("sutram.replayed")]
    # first execution: call 0 made, call 1 stopped by the budget before it reached the model;
    # the resume: call 0 replayed, calls 1 and 2 made
    assert len(executions) == 2 and len(models) == 5 and len(replayed) == 1
    assert sum(s.attributes.get("sutram.interrupted") == "GraphInterrupt" for s in models) == 1
    assert replayed[0].cost_usd == 0.0 and replayed[0].input_tokens is None
    # a replay costs nothing, which is known: the resumed execution's cost is not unknown
    resumed = next(e for e in executions if any(s.attributes.get("sutram.replayed")
                                                for s in store_spans(db_url, e.run_id)))
    assert resumed.cost_usd is not None and resumed.cost_usd > 0
    assert replayed[0].attributes["sutram.replayed_tokens"] == 10
    # what the traces say was paid is what the ledger charged the run
    assert sum(s.cost_usd or 0 for s in models) == pytest.approx(spend.cost_usd)
    assert sum((s.input_tokens or 0) + (s.output_tokens or 0) for s in models) == spend.tokens
