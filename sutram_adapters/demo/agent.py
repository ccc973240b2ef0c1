"""A small tool-calling LangGraph agent with a scripted chat model (no network).

The model's answer depends only on the conversation so far, so a resumed run gets the
same answers as an uninterrupted one. It reports token usage like a real provider.
Every node start and finish, and every model and tool call, is appended to a journal
file so the demo can show what ran in which process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from typing_extensions import TypedDict

__all__ = ["ScriptedChatModel", "build_agent"]

STEP_SECONDS = float(os.environ.get("SUTRAM_DEMO_STEP_SECONDS", "0.6"))


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

    model_name: str = "scripted-demo-model"

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
        done = sum(isinstance(m, ToolMessage) for m in messages)
        _journal("llm_call", tool_results_seen=done)
        time.sleep(STEP_SECONDS)
        if done == 0:
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
        return ChatResult(generations=[ChatGeneration(message=msg)])


class AgentState(TypedDict):
    """The agent's state: the conversation."""
    messages: Annotated[list[AnyMessage], add_messages]


def build_agent() -> StateGraph:  # type: ignore[type-arg]
    """The agent graph: ``agent`` (the model) and ``tools``, looping until an answer."""
    model = ScriptedChatModel()
    tools = ToolNode([lookup_order, estimate_shipping])

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
    g.add_node("agent", agent)
    g.add_node("tools", run_tools)
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    g.add_edge("tools", "agent")
    return g
