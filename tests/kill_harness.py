"""The kill-test harness: worker processes run graphs of the shapes production apps have and
SIGKILL themselves before a seeded, random call; the next worker recovers what the dead
one left. Used by tests/test_kill_harness.py.

Two graphs, every run going through every shape:

* ``sync`` (started with ``invoke``): a node making two ``model.invoke`` calls, a node
  making two ``model.stream`` calls, a model-like node asking for three tool calls and a
  ``ToolNode`` running them in parallel, a node running a ``create_react_agent`` agent
  (a model call asking for two parallel tool calls, then a model call answering), a
  subgraph whose node makes two calls, and a ``Send`` fan-out to two leaves making one
  call each;
* ``async`` (started with ``ainvoke``): async nodes making ``ainvoke`` and ``astream``
  calls, an async ``ToolNode``, the agent through ``ainvoke``, and the same fan-out;
  recovered with ``arecover``.

Every provider call and every tool call is appended to a log (one line per call, fsynced;
a stream when it has run to its end), so the test checks that each completed call was made
exactly once across all processes. Kills fall before calls, inside tools, and inside
streams after their first chunk. Calls that run in
parallel (a ToolNode's tools, Send's leaves) reach their kill point after a pause that grows
with their place, so a kill never falls between a sibling's side effect and its journal
entry: that window (the provider answered, the entry is not written yet) no journal can
close, since the effect and the record are not one transaction.

Workers are forked from a zygote that has imported everything once (``serve``), so a kill
costs a fork, not an interpreter start: ``python -m tests.kill_harness serve URL RUNS``
reads a kill position per line and answers each worker's exit status.
"""

from __future__ import annotations

import asyncio
import operator
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.types import Send
from typing_extensions import TypedDict

from tests.fake_models import EchoChatModel

TENANTS = {"sync": "harness", "async": "harness-async"}
_made = [0]


def _log(line: str) -> None:
    with open(os.environ["SUTRAM_TEST_CALL_LOG"], "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def _maybe_die(call: str) -> None:
    # the process dies before its KILL_AT-th call (0: never), noting which call it was
    _made[0] += 1
    if _made[0] == int(os.environ.get("SUTRAM_TEST_KILL_AT", "0")):
        if os.environ.get("SUTRAM_TEST_KILL_LOG"):
            with open(os.environ["SUTRAM_TEST_KILL_LOG"], "a") as log:
                log.write(call + "\n")
        os.kill(os.getpid(), signal.SIGKILL)


class HarnessModel(EchoChatModel):
    """Logs each provider call, invoked or streamed; may kill its process first."""

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        _maybe_die(f"llm {messages[-1].content}")
        _log(f"llm {messages[-1].content}")
        return super()._generate(messages, stop, run_manager, **kwargs)

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        # a stream may die before it starts or after its first chunk; it is logged when it has
        # run to its end (a stream cut short did not complete, and is made again)
        call = f"llm {messages[-1].content}"
        _maybe_die(call)
        for i, chunk in enumerate(super()._stream(messages, stop, run_manager, **kwargs)):
            yield chunk
            if i == 0:
                _maybe_die(f"{call} (mid-stream)")
        _log(call)


@tool
def charge(order: str, place: int) -> str:
    """Charge a card for an order."""
    time.sleep(0.12 * place)  # siblings finish (and are journaled) before this one may die
    _maybe_die(f"tool charge {order}")
    _log(f"tool charge {order}")
    return f"charged {order}"


@tool
def refund(order: str, place: int) -> str:
    """Refund an order (the agent's tool)."""
    time.sleep(0.12 * place)
    _maybe_die(f"tool refund {order}")
    _log(f"tool refund {order}")
    return f"refunded {order}"


class AgentModel(HarnessModel):
    """The model of a ``create_react_agent`` agent: first asks for two refunds (parallel tool
    calls), then, seeing their results, answers."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        topic = str(messages[0].content).split("/")[0]
        answered = any(m.type == "tool" for m in messages)
        call = f"llm {topic}/agent/{int(answered)}"
        _maybe_die(call)
        _log(call)
        result = EchoChatModel._generate(self, [HumanMessage(f"{topic}/agent/{int(answered)}")], stop, run_manager)
        if not answered:
            result.generations[0].message.tool_calls = [
                {"name": "refund", "args": {"order": f"{topic}-{o}", "place": i}, "id": f"refund-{o}",
                 "type": "tool_call"} for i, o in enumerate("xy")]
        return result


def _agent() -> Any:
    import warnings

    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():  # moved to langchain.agents in LangGraph 1.0; still what apps use
        warnings.simplefilter("ignore")
        return create_react_agent(AgentModel(), [refund])


AGENT = _agent()


class State(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]
    messages: Annotated[list[AnyMessage], add_messages]
    found: list[str]  # the subgraph's answer (its own key: a shared reducer key would be re-added)
    agent: str  # the agent's final answer


class Sub(TypedDict):
    topic: str
    found: list[str]


class Leaf(TypedDict):
    topic: str
    leaf: int


def _say(model: HarnessModel, text: str) -> str:
    return str(model.invoke([HumanMessage(text)]).content)


def plan(state: State) -> dict[str, Any]:
    model = HarnessModel()
    return {"notes": [_say(model, f"{state['topic']}/plan/{i}") for i in range(2)]}


def stream(state: State) -> dict[str, Any]:
    model = HarnessModel()
    return {"notes": ["".join(str(c.content) for c in model.stream([HumanMessage(f"{state['topic']}/stream/{i}")]))
                      for i in range(2)]}


def act(state: State) -> dict[str, Any]:
    calls = [{"name": "charge", "args": {"order": f"{state['topic']}-{o}", "place": i}, "id": f"call-{o}",
              "type": "tool_call"} for i, o in enumerate("abc")]
    return {"messages": [AIMessage("", tool_calls=calls)]}


def _inner(state: Sub) -> dict[str, Any]:
    model = HarnessModel()
    return {"found": [_say(model, f"{state['topic']}/sub/{i}") for i in range(2)]}


def _subgraph() -> Any:
    builder = StateGraph(Sub)
    builder.add_node("inner", _inner)
    builder.add_edge(START, "inner")
    builder.add_edge("inner", END)
    return builder.compile()


def agent(state: State) -> dict[str, Any]:
    out = AGENT.invoke({"messages": [HumanMessage(f"{state['topic']}/agent")]})
    return {"agent": str(out["messages"][-1].content)}


async def aagent(state: State) -> dict[str, Any]:
    out = await AGENT.ainvoke({"messages": [HumanMessage(f"{state['topic']}/agent")]})
    return {"agent": str(out["messages"][-1].content)}


def fan(state: State) -> list[Send]:
    return [Send("leaf", {"topic": state["topic"], "leaf": i}) for i in range(2)]


def leaf(state: Leaf) -> dict[str, Any]:
    time.sleep(0.12 * state["leaf"])  # parallel siblings: see the tool's pause
    return {"notes": [_say(HarnessModel(), f"{state['topic']}/leaf/{state['leaf']}")]}


async def aplan(state: State) -> dict[str, Any]:
    model = HarnessModel()
    return {"notes": [str((await model.ainvoke([HumanMessage(f"{state['topic']}/plan/{i}")])).content)
                      for i in range(2)]}


async def astream(state: State) -> dict[str, Any]:
    model = HarnessModel()
    out = []
    for i in range(2):
        out.append("".join([str(c.content) async for c in model.astream([HumanMessage(f"{state['topic']}/stream/{i}")])]))
    return {"notes": out}


async def aleaf(state: Leaf) -> dict[str, Any]:
    await asyncio.sleep(0.12 * state["leaf"])
    reply = await HarnessModel().ainvoke([HumanMessage(f"{state['topic']}/leaf/{state['leaf']}")])
    return {"notes": [str(reply.content)]}


def build(kind: str = "sync") -> Any:
    is_async = kind == "async"
    builder = StateGraph(State)
    builder.add_node("plan", aplan if is_async else plan)
    builder.add_node("stream", astream if is_async else stream)
    builder.add_node("act", act)
    builder.add_node("tools", ToolNode([charge], handle_tool_errors=False))
    builder.add_node("sub", _subgraph())
    builder.add_node("agent", aagent if is_async else agent)
    builder.add_node("leaf", aleaf if is_async else leaf)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "stream")
    builder.add_edge("stream", "act")
    builder.add_edge("act", "tools")
    builder.add_edge("tools", "agent")
    builder.add_edge("agent", "sub")
    builder.add_conditional_edges("sub", fan, ["leaf"])
    builder.add_edge("leaf", END)
    return builder.compile()


def expected_calls(topic: str) -> list[str]:
    """The provider and tool calls of one run (each must be made exactly once)."""
    calls = [f"llm {topic}/{part}/{i}" for part in ("plan", "stream", "sub", "leaf", "agent") for i in range(2)]
    return calls + [f"tool charge {topic}-{o}" for o in "abc"] + [f"tool refund {topic}-{o}" for o in "xy"]


def expected_notes(topic: str) -> list[str]:
    return sorted(f"echo: {topic}/{part}/{i}" for part in ("plan", "stream", "leaf") for i in range(2))


def expected_agent(topic: str) -> str:
    return f"echo: {topic}/agent/1"


def expected_found(topic: str) -> list[str]:
    return [f"echo: {topic}/sub/{i}" for i in range(2)]


def start(i: int) -> dict[str, Any]:
    return {"topic": f"t{i}", "notes": [], "messages": [], "found": [], "agent": ""}


def work(url: str, runs: int) -> None:
    """Recover what dead workers left, then start the runs nobody started (even runs on the
    sync graph with invoke, odd ones on the async graph with ainvoke)."""
    from sutram_adapters.langgraph.durable import durable
    from sutram_core.errors import RunNotFoundError

    options = {"lease_seconds": 0.4, "remember_runs": False}
    with durable(build("sync"), url=url, tenant=TENANTS["sync"], **options) as sync, \
            durable(build("async"), url=url, tenant=TENANTS["async"], **options) as async_:

        async def recover_all() -> None:
            while sync.recover(limit=50) or await async_.arecover(limit=50):
                pass

        async def main() -> None:
            await recover_all()
            for i in range(runs):
                runner = sync if i % 2 == 0 else async_
                try:
                    runner.ledger.get(runner.tenant, f"run-{i}")
                    continue
                except RunNotFoundError:
                    pass
                if runner is sync:
                    sync.invoke(start(i), thread_id=f"thread-{i}", run_id=f"run-{i}")
                else:
                    await async_.ainvoke(start(i), thread_id=f"thread-{i}", run_id=f"run-{i}")
            await recover_all()

        asyncio.run(main())


def serve(url: str, runs: int, worker: Callable[[str, int], None] | None = None) -> None:
    """Fork a worker per line of stdin (its kill position) that runs ``worker(url, runs)``
    (this module's :func:`work` by default); print each one's exit status."""
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:  # the worker
            os.environ["SUTRAM_TEST_KILL_AT"] = line.strip()
            code = 0
            try:
                (worker or work)(url, runs)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(code, flush=True)


def kill_until_done(module: str, url: str, runs: int, seed: int, tmp: Path, root: Path) -> tuple[int, int]:
    """Drive ``python -m MODULE serve URL RUNS`` (a zygote forking workers) until a worker
    finds nothing left to do: each worker dies before a seeded, random call (its 2nd to 4th,
    so every worker makes progress). The workers log their calls to ``TMP/calls.log`` and
    where they died to ``TMP/kills.log``; ``SUTRAM_KILL_SOAK=N`` allows N times 200 s.
    Returns (kills, workers)."""
    env = {**os.environ, "PYTHONPATH": str(root), "SUTRAM_TEST_CALL_LOG": str(tmp / "calls.log"),
           "SUTRAM_SPOOL_DIR": str(tmp / "spool"), "SUTRAM_TEST_KILL_LOG": str(tmp / "kills.log")}
    rng = random.Random(seed)
    kills = workers = 0
    deadline = time.monotonic() + 200 * int(os.environ.get("SUTRAM_KILL_SOAK", "1"))
    zygote = subprocess.Popen([sys.executable, "-m", module, "serve", url, str(runs)], cwd=root, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert zygote.stdin is not None and zygote.stdout is not None
    try:
        while True:
            assert time.monotonic() < deadline, f"not done after {workers} workers ({kills} kills)"
            zygote.stdin.write(f"{rng.randint(2, 4)}\n")
            zygote.stdin.flush()
            code = int(zygote.stdout.readline())
            workers += 1
            if code == -9:
                kills += 1
                time.sleep(0.45)  # the dead worker's lease runs out
                continue
            assert code == 0, f"worker {workers} failed (its traceback is above)"
            return kills, workers
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:  # URL RUNS KILL_AT: one worker
        os.environ["SUTRAM_TEST_KILL_AT"] = sys.argv[3]
        work(sys.argv[1], int(sys.argv[2]))
