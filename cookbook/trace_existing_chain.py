"""Trace an existing LCEL chain and an existing LangGraph agent by adding one callback.

    python cookbook/trace_existing_chain.py

Nothing in the chain or the graph changes: ``config={"callbacks": [SutramCallbackHandler()]}``
is the whole integration. Spans go to the database SUTRAM_URL names (default: the SQLite
file ./.sutram/sutram.db), next to the checkpoints, and ``sutram runs`` / ``sutram trace``
show them. Uses a fake model offline; set OPENAI_API_KEY (and install langchain-openai)
for the real one.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _models import chat_model
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from sutram_adapters._term import Terminal
from sutram_adapters.demo.agent import build_agent
from sutram_adapters.langchain import SutramCallbackHandler
from sutram_adapters.trace_view import render_trace
from sutram_core.traces import open_trace_store


def main() -> None:
    console = Terminal()
    handler = SutramCallbackHandler()  # the one line: SUTRAM_URL, or ./.sutram/sutram.db

    # 1. an LCEL chain, unchanged
    chain = ChatPromptTemplate.from_messages([("human", "Summarise in one line: {text}")]) | chat_model() | StrOutputParser()
    print(chain.invoke({"text": "Sutram keeps checkpoints, memory and traces in one database."},
                       config={"callbacks": [handler]}))

    # 2. a LangGraph agent (model + two tools), unchanged; the thread id becomes the
    #    trace's gen_ai.conversation.id
    agent = build_agent().compile()
    result = agent.invoke({"messages": [HumanMessage("Where is my order A-1042? I'm in Lisbon.")]},
                          config={"callbacks": [handler], "configurable": {"thread_id": "cookbook-agent"}})
    print(result["messages"][-1].content)

    handler.flush()
    with open_trace_store() as store:
        for run in reversed(store.runs("default", limit=2)):
            console.rule(f"run {run.run_id} ({run.name})")
            render_trace(store.run_spans("default", run.run_id), console)


if __name__ == "__main__":
    main()
