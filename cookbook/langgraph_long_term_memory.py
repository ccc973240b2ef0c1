"""Long-term memory for a LangGraph agent: one ``store=`` argument, remembered across threads.

    python cookbook/langgraph_long_term_memory.py

``SutramStore`` is LangGraph's ``BaseStore``: nodes receive it as ``store`` and use
``put``/``search`` as with any LangGraph store. It persists in the same database as the
checkpoints (SUTRAM_URL, default ./.sutram/sutram.db) and searches by meaning with the
offline default embedder, so no SQLite extension and no embedding API are needed. Two
conversations (threads) share what the first one learned. Fake model offline; set
OPENAI_API_KEY (and install langchain-openai) for the real one.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from typing import Annotated, Any

from _models import chat_model
from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.store.base import BaseStore
from typing_extensions import TypedDict

from sutram_adapters.langgraph import SutramSaver, SutramStore


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    user_id: str


def remember(state: State, *, store: BaseStore) -> dict[str, Any]:
    """Keep what the user says about themselves (a real app would let the model decide)."""
    text = str(state["messages"][-1].content)
    if text.lower().startswith(("i ", "i'm", "my ")):
        store.put(("users", state["user_id"], "facts"), f"fact-{abs(hash(text)) % 10**8}", {"text": text})
    return {}


def answer(state: State, *, store: BaseStore) -> dict[str, Any]:
    """Answer with the user's most relevant memories in the prompt."""
    question = str(state["messages"][-1].content)
    hits = store.search(("users", state["user_id"], "facts"), query=question, limit=3)
    known = "\n".join(f"- {h.value['text']}" for h in hits) or "- nothing yet"
    prompt = [SystemMessage(f"What you know about the user:\n{known}"), *state["messages"]]
    print(f"  memories used: {[h.value['text'] for h in hits]}")
    return {"messages": [chat_model().invoke(prompt)]}


def main() -> None:
    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("answer", answer)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "answer")
    builder.add_edge("answer", END)

    with SutramSaver.from_url() as saver, SutramStore.from_url() as store:  # SUTRAM_URL or the SQLite default
        graph = builder.compile(checkpointer=saver, store=store)
        for thread, text in [("monday", "I love hiking in the Alps and I'm vegetarian."),
                             ("monday", "My sister lives in Geneva."),
                             ("friday", "Plan a weekend trip for me: where should I go, what will I eat?")]:
            print(f"[{thread}] user: {text}")
            out = graph.invoke({"messages": [HumanMessage(text)], "user_id": "u42"},
                               {"configurable": {"thread_id": f"cookbook-{thread}"}})
            print(f"[{thread}] assistant: {out['messages'][-1].content}")
        print("namespaces:", store.list_namespaces(prefix=("users",)))


if __name__ == "__main__":
    main()
