"""LangGraph graphs the tracing tests run, and a way to compare span trees by shape."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict

from sutram_core.traces import StoredSpan, Tracer, span_tree
from tests.fake_models import EchoChatModel


class FanState(TypedDict):
    topics: list[str]
    notes: Annotated[list[str], operator.add]


def fan_out_graph(model: EchoChatModel) -> Any:
    """plan -> (left, right, research x N via Send) -> merge; every node calls the model."""

    async def plan(state: FanState, config: RunnableConfig) -> dict[str, Any]:
        reply = await model.ainvoke("plan the research", config)
        return {"notes": [str(reply.content)]}

    async def left(state: FanState, config: RunnableConfig) -> dict[str, Any]:
        return {"notes": [str((await model.ainvoke("left", config)).content)]}

    async def right(state: FanState, config: RunnableConfig) -> dict[str, Any]:
        return {"notes": [str((await model.ainvoke("right", config)).content)]}

    async def research(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return {"notes": [str((await model.ainvoke(f"research {state['topic']}", config)).content)]}

    async def merge(state: FanState, config: RunnableConfig) -> dict[str, Any]:
        return {"notes": [str((await model.ainvoke("merge", config)).content)]}

    def fan(state: FanState) -> list[Send]:
        return [Send("research", {"topic": t}) for t in state["topics"]]

    g = StateGraph(FanState)
    for name, fn in (("plan", plan), ("left", left), ("right", right), ("research", research), ("merge", merge)):
        g.add_node(name, fn)  # type: ignore[call-overload]
    g.add_edge(START, "plan")
    g.add_edge("plan", "left")
    g.add_edge("plan", "right")
    g.add_conditional_edges("plan", fan, ["research"])
    for name in ("left", "right", "research"):
        g.add_edge(name, "merge")
    g.add_edge("merge", END)
    return g


def shape(span: StoredSpan) -> tuple[Any, ...]:
    """(name, kind, sorted child shapes): a tree compared without ids or timing."""
    return (span.name, span.kind, tuple(sorted(shape(c) for c in span.children)))


def run_tree(tracer: Tracer, tenant: str, run_id: str) -> StoredSpan:
    """Flush and read one run back as a tree; assert it has exactly one root."""
    tracer.flush()
    spans = tracer.store.run_spans(tenant, run_id)
    roots = span_tree(spans)
    assert len(roots) == 1, [s.name for s in roots]
    ids = {s.span_id for s in spans}
    assert all(s.parent_id is None or s.parent_id in ids for s in spans)
    return roots[0]


def only_run(tracer: Tracer, tenant: str = "default") -> StoredSpan:
    """Flush and read back the tenant's one and only run as a tree."""
    tracer.flush()
    runs = tracer.store.runs(tenant)
    assert len(runs) == 1, runs
    return run_tree(tracer, tenant, runs[0].run_id)


def walk(span: StoredSpan) -> list[StoredSpan]:
    """The span and all its descendants, depth first."""
    return [span, *(s for c in span.children for s in walk(c))]


def llm(name: str = "EchoChatModel") -> tuple[Any, ...]:
    return (name, "llm", ())


def node(name: str, *children: tuple[Any, ...]) -> tuple[Any, ...]:
    return (name, "node", tuple(sorted(children)))


FAN_OUT_SHAPE = ("LangGraph", "workflow", tuple(sorted([
    node("plan", llm(), ("fan", "chain", ())), node("left", llm()), node("right", llm()),
    node("research", llm()), node("research", llm()), node("research", llm()),
    node("merge", llm()),
])))
