"""A small tool-calling LangGraph agent with a scripted chat model (no network).

``brief`` asks the model three questions in one node (the node a crash hurts most: LangGraph
alone re-runs it whole), then ``agent`` and ``tools`` loop until the model answers. The
model's answer depends only on its input, so a resumed run gets the same answers as an
uninterrupted one. It reports token usage like a real provider. Every node start and
finish, and every model call's start and end, is appended to an event file so the demo can
show what ran in which process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from typing_extensions import TypedDict

__all__ = ["ScriptedChatModel", "build_agent"]

STEP_SECONDS = float(os.environ.get("SUTRAM_DEMO_STEP_SECONDS", "0.6"))
BRIEF = "Brief me on: "
BRIEF_TOPICS = ("the customer's order history", "open support tickets", "the Lisbon shipping policy")


def _journal(event: str, **fields: Any) -> None:
    path = os.environ.get("SUTRAM_DEMO_JOURNAL")
    if path:
        with Path(path).open("a") as f:
            f.write(json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\n")
            f.flush()
            os.fsync(f.fileno())


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order by id."""
    _journal("tool", name="lookup_order")
    time.sleep(STEP_SECONDS)
    return json.dumps({"order_id": order_id, "item": "espresso grinder", "status": "packed"})


@tool
def estimate_shipping(order_id: str, destination: str) -> str:
    """Estimate the delivery date of an order."""
    _journal("tool", name="estimate_shipping")
    time.sleep(STEP_SECONDS)
    return json.dumps({"order_id": order_id, "destination": destination, "eta_days": 3})


class ScriptedChatModel(BaseChatModel):
    """A fake chat model: calls lookup_order, then estimate_shipping, then answers."""

    model_name: str = "gpt-4o-mini"  # priced like it, so traces and budgets show costs

    @property
    def _llm_type(self) -> str:
        return "scripted-demo"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        """The script already knows its tools; binding changes nothing."""
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = str(messages[-1].content)
        done = sum(isinstance(m, ToolMessage) for m in messages)
        label = prompt if prompt.startswith(BRIEF) else f"agent turn {done + 1}"
        _journal("llm_call", prompt=label, tool_results_seen=done)
        time.sleep(STEP_SECONDS)
        if prompt.startswith(BRIEF):
            msg = AIMessage(content=f"Noted: {prompt.removeprefix(BRIEF)} checked, nothing unusual.")
        elif done == 0:
            msg = AIMessage(content="", tool_calls=[{"name": "lookup_order", "args": {"order_id": "A-1042"}, "id": "call_1"}])
        elif done == 1:
            msg = AIMessage(content="", tool_calls=[{"name": "estimate_shipping",
                                                     "args": {"order_id": "A-1042", "destination": "Lisbon"}, "id": "call_2"}])
        else:
            msg = AIMessage(content="Your espresso grinder (order A-1042) is packed and should reach Lisbon in 3 days.")
        prompt_tokens = sum(len(str(m.content)) for m in messages) // 4 + 12
        completion_tokens = len(str(msg.content)) // 4 + 8
        msg.usage_metadata = {"input_tokens": prompt_tokens, "output_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens}
        msg.response_metadata = {"model_name": self.model_name}
        _journal("llm_done", prompt=label)
        return ChatResult(generations=[ChatGeneration(message=msg)])


class AgentState(TypedDict):
    """The agent's state: the conversation."""
    messages: Annotated[list[AnyMessage], add_messages]


def build_agent() -> StateGraph:  # type: ignore[type-arg]
    """The agent graph: ``brief`` (three model calls), then ``agent`` (the model) and
    ``tools``, looping until an answer."""
    model = ScriptedChatModel()
    tools = ToolNode([lookup_order, estimate_shipping])

    def brief(state: AgentState) -> dict[str, Any]:
        """Three model calls in one node: what the agent should know before it starts."""
        _journal("node_start", node="brief")
        notes = [str(model.invoke([HumanMessage(content=f"{BRIEF}{topic}")]).content) for topic in BRIEF_TOPICS]
        _journal("node_end", node="brief")
        return {"messages": [AIMessage(content="Briefing: " + " ".join(notes))]}

    def agent(state: AgentState) -> dict[str, Any]:
        """Call the model on the conversation."""
        _journal("node_start", node="agent")
        reply = model.invoke(state["messages"])
        _journal("node_end", node="agent")
        return {"messages": [reply]}

    def run_tools(state: AgentState) -> dict[str, Any]:
        """Run the tool calls of the last model message."""
        _journal("node_start", node="tools")
        out: dict[str, Any] = tools.invoke(state)
        _journal("node_end", node="tools")
        return out

    g = StateGraph(AgentState)
    g.add_node("brief", brief)
    g.add_node("agent", agent)
    g.add_node("tools", run_tools)
    g.add_edge(START, "brief")
    g.add_edge("brief", "agent")
    g.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    g.add_edge("tools", "agent")
    return g
