"""The graph the durable-execution recipes run: an ordinary LangGraph graph, unchanged by
Sutram. ``research`` asks the model three questions (three paid calls in one node: the
node a crash hurts most, since LangGraph alone re-runs it whole); ``write`` asks for the
answer.

``SUTRAM_COOKBOOK_DIE_AT=N`` makes the process SIGKILL itself just before its N-th model
call: how the recipes crash a worker at a known point. ``SUTRAM_COOKBOOK_SLOW`` adds that
many seconds to each model call (so a worker can be killed while runs are in flight).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from _models import chat_model
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from sutram_core.runs import current_scope

ASPECTS = ("history", "main risks", "best next step")
_calls = [0]


class Research(TypedDict, total=False):
    question: str
    audience: str
    notes: list[str]
    answer: str


def ask(prompt: str) -> str:
    """One model call; says whether it was made or answered from the journal."""
    _calls[0] += 1
    if _calls[0] == int(os.environ.get("SUTRAM_COOKBOOK_DIE_AT", "0")):
        print(f"  [pid {os.getpid()}] dying before model call {_calls[0]} ({prompt!r})", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(os.environ.get("SUTRAM_COOKBOOK_SLOW", "0")))
    scope = current_scope()
    replayed = scope.replayed if scope else 0
    reply = str(chat_model().invoke([HumanMessage(prompt)]).content)
    how = "from the journal" if scope and scope.replayed > replayed else "made"
    print(f"  [pid {os.getpid()}] {how:16} {prompt!r}", flush=True)
    return reply


def research(state: Research) -> dict[str, Any]:
    return {"notes": [ask(f"{state['question']} Focus on: {aspect}.") for aspect in ASPECTS]}


def write(state: Research) -> dict[str, Any]:
    audience = state.get("audience", "the board")
    return {"answer": ask(f"Write a short answer for {audience} from these notes: " + " | ".join(state["notes"]))}


def build() -> Any:
    builder = StateGraph(Research)
    builder.add_node("research", research)
    builder.add_node("write", write)
    builder.add_edge(START, "research")
    builder.add_edge("research", "write")
    builder.add_edge("write", END)
    return builder.compile()


graph = build()
