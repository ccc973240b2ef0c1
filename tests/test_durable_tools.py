"""LangChain tools inside durable tasks run exactly once: a ToolNode whose parallel tool
calls partly completed before the node failed answers the completed ones from the journal
(each keyed by its tool-call id) on the retry; a tool marked always_run runs again."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from typing_extensions import TypedDict

from sutram_adapters.langchain.tool_journal import always_run
from sutram_adapters.langgraph.durable import durable
from sutram_core.runs import RunStatus


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _effects(tmp: Path) -> Path:
    return tmp / "effects.log"


def _did(what: str) -> None:
    with open(os.environ["SUTRAM_TEST_EFFECTS"], "a") as f:
        f.write(what + "\n")


FAILS: list[str] = []


@tool
def charge(order: str, amount: int) -> str:
    """Charge a card for an order."""
    if order in FAILS:
        FAILS.remove(order)
        time.sleep(0.3)  # the other charges complete first
        raise ConnectionError(f"payment gateway reset while charging {order}")
    _did(f"charge {order} {amount}")
    return f"charged {order}"


@tool
def stock(sku: str) -> int:
    """Read the live stock level (must be read again on every run)."""
    _did(f"stock {sku}")
    return 7


always_run(stock)


def _ask(state: Chat) -> dict[str, Any]:
    calls = [{"name": "charge", "args": {"order": o, "amount": 10 * (i + 1)}, "id": f"call-{o}", "type": "tool_call"}
             for i, o in enumerate(("A", "B", "C"))]
    calls.append({"name": "stock", "args": {"sku": "S1"}, "id": "call-stock", "type": "tool_call"})
    return {"messages": [AIMessage("", tool_calls=calls)]}


def _graph() -> Any:
    b = StateGraph(Chat)
    b.add_node("ask", _ask)
    b.add_node("tools", ToolNode([charge, stock], handle_tool_errors=False))
    b.add_edge(START, "ask")
    b.add_edge("ask", "tools")
    b.add_edge("tools", END)
    return b.compile()


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = _effects(tmp_path)
    monkeypatch.setenv("SUTRAM_TEST_EFFECTS", str(log))
    monkeypatch.setenv("SUTRAM_SPOOL_DIR", str(tmp_path / "spool"))
    return log


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_completed_parallel_tool_calls_are_not_run_again(db_url: str, effects: Path, api: str) -> None:
    FAILS[:] = ["C"]
    with durable(_graph(), url=db_url, backoff_seconds=0.05) as runner:
        if api == "sync":
            out = runner.invoke({"messages": []}, thread_id=f"t-{api}", run_id=f"r-{api}")
        else:
            out = await runner.ainvoke({"messages": []}, thread_id=f"t-{api}", run_id=f"r-{api}")
        run = runner.ledger.get("default", f"r-{api}")
    assert run.status is RunStatus.COMPLETED
    done = effects.read_text().splitlines()
    charges = sorted(d for d in done if d.startswith("charge"))
    assert charges == ["charge A 10", "charge B 20", "charge C 30"]  # each charge made once
    assert done.count("stock S1") == 2  # always_run: read again on the retry
    results = sorted(str(m.content) for m in out["messages"] if m.type == "tool")
    assert results == ["7", "charged A", "charged B", "charged C"]


def test_a_tool_called_directly_in_a_node_is_journaled_by_position(db_url: str, effects: Path) -> None:
    failed: list[bool] = []

    def node(state: Chat) -> dict[str, Any]:
        first = charge.invoke({"order": "D", "amount": 1})
        second = charge.invoke({"order": "E", "amount": 2})
        if not failed:
            failed.append(True)
            raise TimeoutError("after both charges")
        return {"messages": [AIMessage(f"{first}, {second}")]}

    b = StateGraph(Chat)
    b.add_node("node", node)
    b.add_edge(START, "node")
    b.add_edge("node", END)
    with durable(b.compile(), url=db_url, backoff_seconds=0.01) as runner:
        out = runner.invoke({"messages": []}, thread_id="t-direct", run_id="r-direct")
    assert out["messages"][-1].content == "charged D, charged E"
    assert effects.read_text().splitlines() == ["charge D 1", "charge E 2"]


class Died(BaseException):
    """Stands for the worker dying inside a tool: nothing catches it (ToolNode's error
    handling included); the run is left running with a lease nobody renews."""


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")  # still what most apps use
def test_a_react_agent_killed_inside_a_tool_charges_each_order_once(db_url: str, effects: Path, calls: Path) -> None:
    from langchain_core.messages import ToolMessage
    from langgraph.prebuilt import create_react_agent

    from tests.durable_graph import LoggedModel

    dying: list[bool] = [True]

    @tool
    def refund(order: str) -> str:
        """Refund an order."""
        if order == "Y":
            time.sleep(0.3)  # X completes (and is journaled) first
            if dying:
                dying.pop()
                raise Died()
        _did(f"refund {order}")
        return f"refunded {order}"

    class AgentModel(LoggedModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
            result = super()._generate(messages, stop, run_manager, **kwargs)
            if not isinstance(messages[-1], ToolMessage):
                result.generations[0].message.tool_calls = [
                    {"name": "refund", "args": {"order": o}, "id": f"call-{o}", "type": "tool_call"} for o in "XY"]
            return result

    agent = create_react_agent(AgentModel(), [refund])
    with durable(agent, url=db_url, lease_seconds=0.5) as runner:
        with pytest.raises(Died):
            runner.invoke({"messages": [("user", "refund X and Y")]}, thread_id="t-agent", run_id="r-agent")
    time.sleep(0.7)  # the lease runs out
    with durable(agent, url=db_url) as worker:
        (run,) = worker.recover()
    assert run.status is RunStatus.COMPLETED
    assert sorted(effects.read_text().splitlines()) == ["refund X", "refund Y"]  # X was not refunded twice
