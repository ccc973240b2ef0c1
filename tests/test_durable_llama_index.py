"""durable_workflow on LlamaIndex workflows and agents, on SQLite and PostgreSQL: budgets pause
a run before a call that would overspend and resume goes on; a run that asks a person parks
and takes the answer in another process; recoverable errors are retried, then pause; other
errors fail the run and compensate; a step's own retry policy asks again; a runner touches
only its own workflow's runs in its own tenant; the trace names the ledger run and the
runs list shows the ledger's state. Each case counts the calls the "provider" saw.

Many of these cases come from an outside review of the first version (the run that asked a
person was left running, a second execution in one process failed for good, another agent
of the same default name recovered a run, a double wrap journaled nothing, a retry got the
journaled answer, steps and seconds budgets were not enforced)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from workflows import Context, Workflow, step
from workflows.events import Event, HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent
from workflows.retry_policy import retry_policy, stop_after_attempt, wait_fixed

from sutram_adapters.cli import main
from sutram_adapters.langgraph.durable import durable
from sutram_adapters.llama_index.durable import DurableWorkflow, durable_workflow
from sutram_core.errors import ConfigurationError, InvalidRunError, RunNotFoundError, RunPausedError
from sutram_core.runs import Budget, RunStatus, durable_step
from tests.durable_graph import build
from tests.fake_llama import UsageFunctionCallingLLM

CALLS: list[str] = []


class CountingLLM(UsageFunctionCallingLLM):
    """Each call the provider answers, in order; replies "re: <prompt>" padded to some tokens."""

    def _get_response_generator(self) -> Any:
        def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
            last = str(messages[-1].content or "")
            CALLS.append(f"llm {last}")
            return ChatMessage(role="assistant", content=f"re: {last} " + "pad " * 20)

        return respond


@pytest.fixture(autouse=True)
def _calls() -> Iterator[None]:
    CALLS.clear()
    FAILS["n"] = 0
    yield


class A(Event):
    x: str


class B(Event):
    x: str


class Three(Workflow):
    """Three steps, a model call each."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = CountingLLM()

    @step
    async def one(self, ev: StartEvent) -> A:
        r = await self.llm.achat([ChatMessage(role="user", content=f"one {ev.topic}")])
        return A(x=str(r.message.content)[:10])

    @step
    async def two(self, ev: A) -> B:
        r = await self.llm.achat([ChatMessage(role="user", content=f"two {ev.x}")])
        return B(x=str(r.message.content)[:10])

    @step
    async def three(self, ev: B) -> StopEvent:
        r = await self.llm.achat([ChatMessage(role="user", content=f"three {ev.x}")])
        return StopEvent(result=str(r.message.content)[:16])


def run(coro: Any) -> Any:
    """Run a coroutine, or a plain workflow's run (started by a callable inside the loop)."""
    async def main() -> Any:
        return await (coro() if callable(coro) else coro)

    return asyncio.run(main())


def wrap(workflow: Workflow, url: str, **options: Any) -> DurableWorkflow:
    return durable_workflow(workflow, url=url, tenant=options.pop("tenant", "acme"), trace=options.pop("trace", False),
                            **options)


def test_a_budget_pauses_the_run_before_the_call_that_overspends_and_a_resume_elsewhere_goes_on(
        db_url: str) -> None:
    plain = run(lambda: Three(timeout=30).run(topic="tea"))
    expected = list(CALLS)
    CALLS.clear()
    first = wrap(Three(timeout=30), db_url)
    with pytest.raises(RunPausedError, match="max_tokens"):
        run(first.run(run_id="r1", topic="tea", budget=Budget(max_tokens=40)))
    paused = first.ledger.get("acme", "r1")
    assert paused.status is RunStatus.PAUSED and paused.pause_reason.startswith("budget: max_tokens")
    assert CALLS == expected[:2]  # the call that would go past the budget was not made
    first.close()
    other = wrap(Three(timeout=30), db_url)  # another process: a new workflow object
    assert run(other.resume("r1", budget=Budget(max_tokens=10_000))) == plain
    assert CALLS == expected  # nothing asked twice
    assert run(other.result("r1")) == plain
    other.close()


def test_a_run_paused_and_resumed_in_the_same_process_completes(db_url: str) -> None:
    runner = wrap(Three(timeout=30), db_url)
    with pytest.raises(RunPausedError):
        run(runner.run(run_id="same", topic="tea", budget=Budget(max_tokens=40)))
    assert run(runner.resume("same", budget=Budget(max_tokens=10_000))).startswith("re: three")
    assert len(CALLS) == 3 and len(set(CALLS)) == 3
    runner.close()


@pytest.mark.parametrize(("budget", "limit"), [(Budget(max_steps=1), "max_steps"),
                                               (Budget(max_seconds=0.05), "max_seconds")])
def test_steps_and_seconds_budgets_pause_before_the_next_step(db_url: str, budget: Budget, limit: str) -> None:
    class Slow(Three):
        @step
        async def one(self, ev: StartEvent) -> A:
            await asyncio.sleep(0.1)
            return A(x="slow")

    runner = wrap(Slow(timeout=30), db_url)
    with pytest.raises(RunPausedError, match=limit):
        run(runner.run(run_id="b", topic="tea", budget=budget))
    assert CALLS == []  # paused before step two's call
    assert run(runner.resume("b", budget=Budget())).startswith("re: three")
    runner.close()


class AskAndWait(Workflow):
    """Writes the question to the stream, then waits for the answer in the same step."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = CountingLLM()

    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
        draft = await self.llm.achat([ChatMessage(role="user", content=f"draft {ev.topic}")])
        ctx.write_event_to_stream(InputRequiredEvent(prefix=f"send {str(draft.message.content)[:8]}?"))
        answer = await ctx.wait_for_event(HumanResponseEvent, timeout=None)
        final = await self.llm.achat([ChatMessage(role="user", content=f"final {answer.response}")])
        return StopEvent(result=f"{answer.response}|{str(final.message.content)[:12]}")


class AskWithWaiter(AskAndWait):
    """The documented form: the question is the waiter's event."""

    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
        await self.llm.achat([ChatMessage(role="user", content=f"draft {ev.topic}")])
        answer = await ctx.wait_for_event(HumanResponseEvent, waiter_id="approve",
                                          waiter_event=InputRequiredEvent(prefix="send?"), timeout=None)
        final = await self.llm.achat([ChatMessage(role="user", content=f"final {answer.response}")])
        return StopEvent(result=f"{answer.response}|{str(final.message.content)[:12]}")


class AskThenAnswerStep(Workflow):
    """The classic form: a step returns the question, another step takes the answer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = CountingLLM()

    @step
    async def ask(self, ev: StartEvent) -> InputRequiredEvent:
        await self.llm.achat([ChatMessage(role="user", content=f"draft {ev.topic}")])
        return InputRequiredEvent(prefix="send?")

    @step
    async def answer(self, ev: HumanResponseEvent) -> StopEvent:
        final = await self.llm.achat([ChatMessage(role="user", content=f"final {ev.response}")])
        return StopEvent(result=f"{ev.response}|{str(final.message.content)[:12]}")


@pytest.mark.parametrize("flow", [AskAndWait, AskWithWaiter, AskThenAnswerStep])
def test_a_run_that_asks_a_person_parks_and_takes_the_answer_in_another_process(db_url: str, flow: type) -> None:
    first = wrap(flow(timeout=30), db_url)
    with pytest.raises(RunPausedError, match="waiting for input"):
        run(first.run(run_id="ask", topic="tea"))
    assert first.ledger.get("acme", "ask").status is RunStatus.PAUSED
    assert CALLS == ["llm draft tea"]
    first.close()
    other = wrap(flow(timeout=30), db_url)
    assert run(other.resume("ask", event=HumanResponseEvent(response="yes"))) == "yes|re: final ye"
    assert CALLS == ["llm draft tea", "llm final yes"]  # the draft was not asked again
    other.close()


def test_a_run_whose_worker_died_after_asking_is_parked_again_by_recovery(db_url: str) -> None:
    first = wrap(AskThenAnswerStep(timeout=30), db_url, lease_seconds=0.3)
    with pytest.raises(RunPausedError):
        run(first.run(run_id="ask", topic="tea"))
    # as if the worker died between journaling the question and pausing the run
    first.db.run(_as_running("acme", "ask"))
    first.close()
    other = wrap(AskThenAnswerStep(timeout=30), db_url)
    (got,) = run(other.recover())
    assert got.status is RunStatus.PAUSED and "waiting for input" in (got.pause_reason or "")
    assert run(other.resume("ask", event=HumanResponseEvent(response="ok"))) == "ok|re: final ok"
    assert CALLS == ["llm draft tea", "llm final ok"]
    other.close()


def test_a_run_whose_worker_died_after_its_last_step_is_completed_from_its_journal(db_url: str) -> None:
    # the worker journaled the step that returned the StopEvent and died before the ledger
    # heard: recovery finishes the run with that result, runs no step, starts nothing afresh
    first = wrap(Three(timeout=30), db_url, lease_seconds=0.3)
    agent = wrap(_agent("BILLING"), db_url, lease_seconds=0.3)
    flow_result = run(first.run(run_id="ended", topic="tea"))
    agent_result = run(agent.run(run_id="ended-agent", user_msg="ship A-1"))
    for runner, run_id in ((first, "ended"), (agent, "ended-agent")):
        runner.db.run(_as_running("acme", run_id))
        runner.close()
    made = list(CALLS)
    other, other_agent = wrap(Three(timeout=30), db_url), wrap(_agent("BILLING"), db_url)
    (got,) = run(other.recover())
    (got_agent,) = run(other_agent.recover())
    assert (got.run_id, got.status, got_agent.status) == ("ended", RunStatus.COMPLETED, RunStatus.COMPLETED)
    assert CALLS == made  # no step ran again
    assert run(other.result("ended")) == flow_result
    assert str(run(other_agent.result("ended-agent"))) == str(agent_result)
    other.close()
    other_agent.close()


def _as_running(tenant: str, run_id: str) -> Any:
    from sqlalchemy import text

    from sutram_core.backends.sql.database import Step

    # a new fence too: a heartbeat the runner had already sent (its task is cancelled, not
    # the thread running it) would otherwise renew the lease of the "dead" run under load
    yield Step(text("UPDATE sutram_runs SET status = 'running', lease_expires_at = 1, executor_id = 'dead', "
                    "fence = fence + 1, pause_reason = NULL WHERE tenant_id = :t AND run_id = :r"),
               {"t": tenant, "r": run_id})


FAILS = {"n": 0}
UNDONE: list[str] = []


def _refund(result: Any) -> None:
    UNDONE.append(str(result))


@durable_step(name="tests.llama.charge", compensate=_refund)
def charge(order: str) -> str:
    CALLS.append(f"charge {order}")
    return f"charged {order}"


class Flaky(Workflow):
    """Charges (durably), asks the model, then fails ``fail_times`` times with ``error``."""

    def __init__(self, fail_times: int, error: type[Exception], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = CountingLLM()
        self.fail_times, self.error = fail_times, error

    @step
    async def go(self, ev: StartEvent) -> StopEvent:
        charged = charge(f"{ev.topic}-1")
        reply = await self.llm.achat([ChatMessage(role="user", content=f"go {ev.topic}")])
        FAILS["n"] += 1
        if FAILS["n"] <= self.fail_times:
            raise self.error("the network is down" if self.error is ConnectionError else "bad input")
        return StopEvent(result=f"{charged}|{str(reply.message.content)[:8]}")


def test_a_recoverable_error_is_retried_from_the_journal_and_a_lasting_one_pauses(db_url: str) -> None:
    UNDONE.clear()
    runner = wrap(Flaky(2, ConnectionError, timeout=30), db_url, backoff_seconds=0.01)
    assert run(runner.run(run_id="flaky", topic="o")) == "charged o-1|re: go o"
    assert CALLS == ["charge o-1", "llm go o"]  # two retries, nothing made twice
    lasting = wrap(Flaky(99, ConnectionError, timeout=30), db_url, backoff_seconds=0.01, retries=2)
    with pytest.raises(RunPausedError, match="still failing after 2 retries"):
        run(lasting.run(run_id="lasting", topic="p"))
    assert lasting.ledger.get("acme", "lasting").status is RunStatus.PAUSED and UNDONE == []
    assert run(lasting.cancel("lasting")).status is RunStatus.CANCELLED
    assert UNDONE == ["charged p-1"]
    with pytest.raises(InvalidRunError):
        run(lasting.cancel("lasting"))
    assert UNDONE == ["charged p-1"]  # compensated once
    runner.close()
    lasting.close()


def test_an_error_that_is_no_accident_fails_the_run_and_compensates_once(db_url: str) -> None:
    UNDONE.clear()
    runner = wrap(Flaky(1, ValueError, timeout=30), db_url)
    with pytest.raises(ValueError, match="bad input"):
        run(runner.run(run_id="bad", topic="q"))
    failed = runner.ledger.get("acme", "bad")
    assert failed.status is RunStatus.FAILED and "bad input" in (failed.error or "")
    assert UNDONE == ["charged q-1"] and CALLS == ["charge q-1", "llm go q"]
    # as if the worker died after journaling the failing step, before the ledger heard:
    # recovery fails it with the same error (not restarted past its end), runs nothing again
    runner.db.run(_as_running("acme", "bad"))
    runner.close()
    UNDONE.clear()
    other = wrap(Flaky(0, ValueError, timeout=30), db_url)
    (again,) = run(other.recover())
    assert again.status is RunStatus.FAILED and again.error == "ValueError: bad input"
    assert CALLS == ["charge q-1", "llm go q"] and FAILS["n"] == 1
    assert UNDONE == []  # its compensation had run: not again
    other.close()


def test_a_step_s_own_retry_policy_asks_the_model_again(db_url: str) -> None:
    class Retrying(Workflow):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.llm = CountingLLM()
            self.attempts = 0

        @step(retry_policy=retry_policy(wait=wait_fixed(0.01), stop=stop_after_attempt(3)))
        async def go(self, ev: StartEvent) -> StopEvent:
            self.attempts += 1
            reply = await self.llm.achat([ChatMessage(role="user", content=f"try {ev.topic}")])
            if self.attempts == 1:
                raise ValueError("an answer the step cannot use")
            return StopEvent(result=str(reply.message.content)[:9])

    runner = wrap(Retrying(timeout=30), db_url)
    assert run(runner.run(run_id="retry", topic="x")) == "re: try x"
    assert CALLS == ["llm try x", "llm try x"]  # the retry asked again, as without Sutram
    runner.close()


def _agent(prompt: str) -> FunctionAgent:
    def ship(order: str) -> str:
        """Ship an order."""
        return f"shipped {order}"

    return FunctionAgent(tools=[ship], llm=CountingLLM(), system_prompt=prompt, timeout=30)


def test_a_runner_recovers_only_its_own_workflow_s_runs_in_its_own_tenant(db_url: str, calls: Path) -> None:
    # a run left running by a dead worker, for each of: an agent, another agent of the same
    # default name, a LangGraph graph of the same tenant, the same agent in another tenant
    billing = wrap(_agent("BILLING"), db_url, lease_seconds=0.2)
    shipping = wrap(_agent("SHIPPING"), db_url, lease_seconds=0.2)
    elsewhere = wrap(_agent("BILLING"), db_url, lease_seconds=0.2, tenant="globex")
    for runner, run_id in ((billing, "bill"), (shipping, "ship"), (elsewhere, "far")):
        with pytest.raises(RunPausedError):
            run(runner.run(run_id=run_id, user_msg="ship A-1", budget=Budget(max_tokens=1)))
        runner.db.run(_as_running(runner.tenant, run_id))
    with durable(build(), url=db_url, tenant="acme", remember_runs=False, lease_seconds=0.2) as graph:
        graph.invoke({"topic": "tea", "answers": [], "done": False}, thread_id="lg", run_id="lg",
                     budget=Budget(max_tokens=1))  # pauses on its budget
        graph.ledger.set_budget("acme", "lg", Budget())
        billing.db.run(_as_running("acme", "lg"))
        assert [r.run_id for r in run(billing.recover())] == ["bill"]
        assert {r.run_id: r.status for r in graph.ledger.runs("acme", limit=10)}["ship"] is RunStatus.RUNNING
        assert [r.run_id for r in graph.recover()] == ["lg"]  # the graph's runner takes only its own
    with pytest.raises(InvalidRunError, match="is a run of"):
        run(billing.resume("lg"))
    with durable(build(), url=db_url, tenant="acme", remember_runs=False) as graph:
        with pytest.raises(InvalidRunError, match="LlamaIndex workflow 'Agent'"):  # and the other way round
            graph.resume("ship")
        with pytest.raises(InvalidRunError, match="LlamaIndex workflow"):
            graph.cancel("ship")
    assert [r.run_id for r in run(shipping.recover())] == ["ship"]
    assert [r.run_id for r in run(elsewhere.recover())] == ["far"]
    for runner in (billing, shipping, elsewhere):
        runner.close()


def test_bad_uses_get_a_typed_error_and_change_nothing(db_url: str) -> None:
    with pytest.raises(ConfigurationError, match="Workflow"):
        durable_workflow(object(), url=db_url)
    shared = Three(timeout=30)
    runner = wrap(shared, db_url)
    with pytest.raises(ConfigurationError, match="already wrapped"):
        wrap(shared, db_url)
    used = Three(timeout=30)
    run(lambda: used.run(topic="tea"))
    with pytest.raises(ConfigurationError, match="already run"):
        wrap(used, db_url)
    run(runner.run(run_id="once", topic="tea"))
    with pytest.raises(InvalidRunError, match="already exists"):
        run(runner.run(run_id="once", topic="tea"))
    with pytest.raises(RunNotFoundError):
        run(runner.resume("nope"))
    runner.close()


def test_the_trace_names_the_ledger_run_and_the_runs_list_shows_its_state(db_url: str, capsys: Any,
                                                                            tmp_path: Path) -> None:
    from sutram_adapters.llama_index.instrumentation import current_instrumentation

    runner = wrap(Three(timeout=30), db_url, trace=True, name="triage")
    run(runner.run(run_id="traced", topic="tea"))
    with pytest.raises(RunPausedError):
        run(runner.run(run_id="stopped", topic="tea", budget=Budget(max_tokens=40)))
    instrumentation = current_instrumentation()
    assert instrumentation is not None
    instrumentation.flush()
    capsys.readouterr()
    assert main(["runs", "--url", db_url, "--tenant", "acme", "--json"]) == 0
    listed = {r["durable_run_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["traced"]["status"] == "ok" and listed["traced"]["name"] == "triage"
    assert listed["stopped"]["status"] == "paused"
    instrumentation.uninstrument()
    runner.close()
