"""LlamaIndex workflows for the durable-workflow tests and their kill harness.

Two shapes, each run durably by ``durable_workflow``:

* ``flow``: a custom three-step workflow: ``plan`` asks the model, ``act`` charges two
  orders through a ``@durable_step`` tool (in parallel, from two work items), ``answer``
  reads the Context store (set by ``plan``) and asks the model again;
* ``agent``: a ``FunctionAgent`` whose model asks for two parallel ``charge`` tool calls,
  then answers from their results.

Every provider call and tool call is appended to a log (fsynced), so a test checks that
each was made exactly once across all processes. Workers SIGKILL themselves before a
seeded call (``SUTRAM_TEST_KILL_AT``), once every tool call they made has its result in
the journal, so a kill never falls between a call's side effect and its journal entry
(that window no journal can close).

``python -m tests.kill_harness_llama serve URL RUNS`` forks a worker per line of stdin (its
kill position) from a process that has imported everything once, and prints each exit
status.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.tools import FunctionTool
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from sutram_core.runs import durable_step
from tests import kill_harness
from tests.fake_llama import UsageFunctionCallingLLM
from tests.kill_harness import _log, serve

TENANT = "llama-harness"


class HarnessLLM(UsageFunctionCallingLLM):
    """Logs each provider call (and may kill its process first). Asked with tools and no
    tool results yet, it calls ``charge`` for orders ``<topic>-a`` and ``<topic>-b``; else
    it answers with what it read."""

    def _get_response_generator(self) -> Any:
        def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
            last = str(messages[-1].content or "")
            asked = next((str(m.content) for m in messages if m.role == MessageRole.USER), "")
            topic = next(iter(re.findall(r"\bt\d+\b", asked)), "?")
            results = sorted(str(m.content) for m in messages if m.role == MessageRole.TOOL)
            call = f"llm {topic} {'answer' if results else last}"
            with _SIDE_EFFECTS:
                _die_settled(call)
                _log(call)
            if kwargs.get("tools") and not results:
                return ChatMessage(role="assistant", blocks=[
                    ToolCallBlock(tool_call_id=f"{topic}-{o}", tool_name="charge",
                                  tool_kwargs={"order": f"{topic}-{o}", "place": i}) for i, o in enumerate("ab")])
            if results:
                return ChatMessage(role="assistant", content=f"done {topic}: " + "; ".join(results))
            return ChatMessage(role="assistant", content=f"re: {last}")

        return respond


_DB: list[Any] = []  # the worker's database, once it is known (work(), or set by a test)
_CHARGED: list[str] = []  # the orders this process charged
# held from a call's kill check to its side effect: no tool thread can charge between another
# call's look at the journal and its kill
_SIDE_EFFECTS = threading.RLock()


def _die_settled(call: str) -> None:
    """``_maybe_die``, except that a worker whose tool calls do not all have their result in
    the call journal yet dies at a later call instead: a kill never falls between a call's
    side effect and its journal entry (that window no journal can close), whatever else is
    in flight (a parallel sibling, or the other runs of a worker running many at once; the
    entry may be waiting for this very event loop, so the worker cannot wait here)."""
    at = int(os.environ.get("SUTRAM_TEST_KILL_AT", "0"))
    if _DB and _CHARGED and kill_harness._made[0] + 1 == at:
        from sqlalchemy import bindparam, text

        from sutram_core.backends.sql.database import Step

        wanted = sorted({f'"charged {order}"' for order in _CHARGED})

        def plan() -> Any:
            query = text("SELECT count(DISTINCT output) FROM sutram_journal WHERE output IN :o")
            rows = yield Step(query.bindparams(bindparam("o", expanding=True)), {"o": wanted})
            return int(rows[0][0])

        if _DB[0].run(plan(), write=False) < len(wanted):
            os.environ["SUTRAM_TEST_KILL_AT"] = str(at + 1)
    kill_harness._maybe_die(call)


def charge(order: str, place: int = 0) -> str:
    """Charge an order (the side effect each run must have exactly once per order)."""
    time.sleep(0.01 * place)  # siblings in order (their kill positions stay seeded)
    with _SIDE_EFFECTS:
        _die_settled(f"tool charge {order}")
        _CHARGED.append(order)
        _log(f"tool charge {order}")
    return f"charged {order}"


charge_once = durable_step(charge, name="tests.charge")


class Charge(Event):
    order: str
    place: int


class Charged(Event):
    note: str


class Flow(Workflow):
    """plan (model) -> act x2 (durable tool, parallel) -> answer (collects both; model)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = HarnessLLM()

    @step
    async def plan(self, ctx: Context, ev: StartEvent) -> Charge | None:
        await self.llm.achat([ChatMessage(role="user", content=f"plan {ev.topic}")])
        await ctx.store.set("topic", ev.topic)
        for i, order in enumerate("ab"):
            ctx.send_event(Charge(order=f"{ev.topic}-{order}", place=i))
        return None

    @step(num_workers=2)
    async def act(self, ev: Charge) -> Charged:
        return Charged(note=await asyncio.to_thread(charge_once, ev.order, ev.place))

    @step
    async def answer(self, ctx: Context, ev: Charged) -> StopEvent | None:
        got = ctx.collect_events(ev, [Charged, Charged])
        if got is None:
            return None
        topic = await ctx.store.get("topic")
        reply = await self.llm.achat([ChatMessage(role="user", content=f"answer {topic}: "
                                                  + "; ".join(sorted(e.note for e in got)))])
        return StopEvent(result=str(reply.message.content))


def build(kind: str) -> Workflow:
    if kind == "flow":
        return Flow(timeout=60)
    return FunctionAgent(name="refunds", tools=[FunctionTool.from_defaults(charge)], llm=HarnessLLM(),
                         system_prompt="You charge orders.", timeout=60)


def start(kind: str, i: int) -> dict[str, Any]:
    topic = f"t{i}"
    return {"topic": topic} if kind == "flow" else {"user_msg": f"charge the orders of {topic}"}


def kind_of(i: int) -> str:
    return "flow" if i % 2 == 0 else "agent"


def expected_calls(i: int) -> list[str]:
    topic = f"t{i}"
    tools = [f"tool charge {topic}-{o}" for o in "ab"]
    if kind_of(i) == "flow":
        return [f"llm {topic} plan {topic}", *tools,
                f"llm {topic} answer {topic}: charged {topic}-a; charged {topic}-b"]
    return [f"llm {topic} charge the orders of {topic}", *tools, f"llm {topic} answer"]


def expected_result(i: int) -> str:
    topic = f"t{i}"
    if kind_of(i) == "flow":
        return f"re: answer {topic}: charged {topic}-a; charged {topic}-b"
    return f"done {topic}: charged {topic}-a; charged {topic}-b"


def work(url: str, runs: int) -> None:
    """Recover what dead workers left, then start the runs nobody started."""
    from sutram_adapters.llama_index.durable import durable_workflow
    from sutram_core.backends.sql.database import Database
    from sutram_core.errors import RunNotFoundError

    _DB[:] = [Database(url)]

    async def main() -> None:
        wrapped = {kind: durable_workflow(build(kind), url=url, tenant=TENANT, lease_seconds=0.4, trace=False)
                   for kind in ("flow", "agent")}

        async def recover_all() -> None:
            while any([await w.recover(limit=50) for w in wrapped.values()]):
                pass

        await recover_all()
        for i in range(runs):
            runner = wrapped[kind_of(i)]
            try:
                runner.ledger.get(TENANT, f"run-{i}")
                continue
            except RunNotFoundError:
                pass
            await runner.run(run_id=f"run-{i}", **start(kind_of(i), i))
        await recover_all()
        for w in wrapped.values():
            w.close()

    asyncio.run(main())


if __name__ == "__main__":
    # through the module's own name: the journal names event classes by module, and a class
    # of __main__ could not be found by a process started otherwise
    from tests import kill_harness_llama

    serve(sys.argv[2], int(sys.argv[3]), kill_harness_llama.work)
