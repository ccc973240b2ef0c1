"""Trace a LlamaIndex FunctionAgent with one call at start-up.

    python cookbook/llamaindex_tracing.py

``instrument()`` registers Sutram's span and event handlers on LlamaIndex's root
dispatcher: the agent run, each workflow step, each tool call and each LLM call (with
tokens and cost) become one trace tree in the database SUTRAM_URL names. Uses a fake
function-calling LLM offline; set OPENAI_API_KEY (and install llama-index-llms-openai)
for the real one.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _models import llama_index_llm
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from sutram_adapters._term import Terminal
from sutram_adapters.llama_index import instrument, trace_scope
from sutram_adapters.trace_view import render_trace
from sutram_core.traces import open_trace_store


def lookup_order(order_id: str = "A-1042") -> str:
    """Look up an order by its id."""
    return f"order {order_id}: espresso grinder, packed, ships tomorrow"


async def main() -> None:
    instrumentation = instrument(tenant="acme")  # the one call
    agent = FunctionAgent(name="order_desk", tools=[FunctionTool.from_defaults(lookup_order)], llm=llama_index_llm(),
                          system_prompt="You answer questions about orders.")
    with trace_scope(thread_id="cookbook-llamaindex"):
        print(await agent.run("Where is my order A-1042?"))
    instrumentation.flush()

    console = Terminal()
    with open_trace_store() as store:
        run = store.runs("acme", thread_id="cookbook-llamaindex", limit=1)[0]
        render_trace(store.run_spans("acme", run.run_id), console)


if __name__ == "__main__":
    asyncio.run(main())
