"""Agent runs for the span-detail tests: a durable LangGraph agent named ``support`` that asks
for a tool (one call answers, one raises), whose prompt holds a hostile ``<script>``, and a
LlamaIndex ``FunctionAgent`` named ``orders`` with a tool call. Real LangGraph and
LlamaIndex objects, fake models (no network)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from sutram_adapters.langgraph.durable import durable
from tests.fake_models import EchoChatModel

HOSTILE = "<script>window.pwned=1</script> where are orders A-1042 and B-9?"
SYSTEM = "You are the order desk. Answer briefly."


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order by id."""
    if order_id == "B-9":
        raise LookupError(f"order {order_id} is not in the warehouse system")
    return f"order {order_id}: packed, leaves Tuesday"


class ToolCallingModel(EchoChatModel):
    """Asks for ``lookup_order`` of A-1042 and B-9 first; once tool answers are in, summarises them."""

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        answers = [m for m in messages if isinstance(m, ToolMessage)]
        if answers:
            reply = AIMessage(content="A-1042 is packed and leaves Tuesday; B-9 could not be found.",
                              usage_metadata={"input_tokens": 40, "output_tokens": 14, "total_tokens": 54},
                              response_metadata={"model_name": "gpt-4o-mini-2024-07-18"})
        else:
            reply = AIMessage(content="", tool_calls=[
                {"name": "lookup_order", "args": {"order_id": "A-1042"}, "id": "call-a1042"},
                {"name": "lookup_order", "args": {"order_id": "B-9"}, "id": "call-b9"}],
                usage_metadata={"input_tokens": 25, "output_tokens": 9, "total_tokens": 34},
                response_metadata={"model_name": "gpt-4o-mini-2024-07-18"})
        return ChatResult(generations=[ChatGeneration(message=reply)])


def agent(state: MessagesState) -> dict[str, Any]:
    reply = ToolCallingModel().invoke([SystemMessage(SYSTEM), *state["messages"]])
    return {"messages": [reply]}


def route(state: MessagesState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


def build_support() -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([lookup_order], handle_tool_errors=True))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(name="support")


@dataclass
class Agents:
    support_run: str  # the durable run's ledger id
    llama_run: str  # the LlamaIndex run's trace id


def seed_agents(url: str, tenant: str = "acme") -> Agents:
    """Run both agents once into ``url``."""
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    from sutram_adapters.llama_index import instrument, trace_scope
    from sutram_core.traces import Tracer
    from tests.fake_llama import UsageFunctionCallingLLM

    with durable(build_support(), url=url, tenant=tenant, remember_runs=False) as runner:
        runner.invoke({"messages": [HumanMessage(HOSTILE)]}, thread_id="support-thread", run_id="run-support")

    def track_parcel(parcel: str = "P-77") -> str:
        """Where a parcel is."""
        return f"parcel {parcel}: out for delivery"

    tracer = Tracer.from_url(url)
    inst = instrument(tracer=tracer)
    try:
        llama = FunctionAgent(name="orders", tools=[FunctionTool.from_defaults(track_parcel)],
                              llm=UsageFunctionCallingLLM(), system_prompt="You track parcels.")

        async def go() -> None:
            with trace_scope(thread_id="llama-thread", tenant=tenant):
                await llama.run("where is parcel P-77?")

        asyncio.run(go())
        tracer.flush()
        (run,) = tracer.store.runs(tenant, thread_id="llama-thread")
    finally:
        inst.uninstrument()
        tracer.close()
    return Agents("run-support", run.run_id)
