"""The kill-test harness: worker processes run a multi-node graph whose nodes make several
model and tool calls, and SIGKILL themselves before a seeded, random call; the next worker
recovers what the dead one left. Used by tests/test_kill_harness.py (and runnable alone:
``python -m tests.kill_harness URL RUNS KILL_AT``).

Every provider call and every tool call is appended to a log (one line per call, fsynced),
so the test can check that each was made exactly once across all the processes.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from sutram_core import durable_step
from tests.fake_models import EchoChatModel

NODES = ("plan", "research", "write")
CALLS_PER_NODE = 2
_made = [0]


def _log(line: str) -> None:
    with open(os.environ["SUTRAM_TEST_CALL_LOG"], "a") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def _maybe_die() -> None:
    # the process dies before its KILL_AT-th call (0: never)
    _made[0] += 1
    if _made[0] == int(os.environ.get("SUTRAM_TEST_KILL_AT", "0")):
        os.kill(os.getpid(), signal.SIGKILL)


class HarnessModel(EchoChatModel):
    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        _maybe_die()
        _log(f"llm {messages[-1].content}")
        return super()._generate(messages, stop, run_manager, **kwargs)


@durable_step
def lookup_tool(query: str) -> str:
    _maybe_die()
    _log(f"tool {query}")
    return f"facts about {query}"


class State(TypedDict):
    topic: str
    notes: list[str]


def _node(name: str) -> Any:
    def run(state: State) -> dict[str, Any]:
        notes = list(state["notes"])
        for i in range(CALLS_PER_NODE):
            reply = HarnessModel().invoke([HumanMessage(f"{state['topic']}/{name}/{i}")])
            notes.append(str(reply.content))
        notes.append(lookup_tool(f"{state['topic']}/{name}"))
        return {"notes": notes}

    run.__name__ = name
    return run


def build() -> Any:
    builder = StateGraph(State)
    previous = START
    for name in NODES:
        builder.add_node(name, _node(name))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder.compile()


def expected_notes(topic: str) -> list[str]:
    out: list[str] = []
    for name in NODES:
        out += [f"echo: {topic}/{name}/{i}" for i in range(CALLS_PER_NODE)]
        out.append(f"facts about {topic}/{name}")
    return out


def work(url: str, runs: int) -> None:
    """Recover what dead workers left, then start the runs nobody started."""
    from sutram_adapters.langgraph.durable import durable
    from sutram_core.errors import RunNotFoundError

    with durable(build(), url=url, tenant="harness", lease_seconds=0.6, remember_runs=False) as runner:
        while runner.recover(limit=50):
            pass
        for i in range(runs):
            try:
                runner.ledger.get("harness", f"run-{i}")
                continue
            except RunNotFoundError:
                pass
            runner.invoke({"topic": f"t{i}", "notes": []}, thread_id=f"thread-{i}", run_id=f"run-{i}")
        while runner.recover(limit=50):
            pass


if __name__ == "__main__":
    os.environ["SUTRAM_TEST_KILL_AT"] = sys.argv[3]
    work(sys.argv[1], int(sys.argv[2]))
