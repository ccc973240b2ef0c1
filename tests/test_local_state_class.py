"""A graph whose pydantic state class is defined inside a function (so no process can import
it) resumes on SutramSaver as on LangGraph's own saver. This module keeps its annotations
evaluated (no ``from __future__ import annotations``): LangGraph reads a local class's
hints at compile time."""

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph

from sutram_adapters.langgraph import SutramSaver


def test_a_pydantic_state_class_defined_inside_a_function_resumes_as_langgraph_s_saver_does(db_url: str) -> None:
    from pydantic import BaseModel

    from sutram_core.errors import CheckpointDecodeError

    class Inner(BaseModel):  # no process can import it: LangGraph's saver gives its fields back
        x: int

    class Shape(BaseModel):
        inner: Inner
        items: list[str] = []

    def a(s: Any) -> dict[str, Any]:
        return {"items": [*s.items, "a"], "inner": Inner(x=s.inner.x + 1)}

    def b(s: Any) -> dict[str, Any]:
        assert isinstance(s.inner, Inner) and s.inner.x == 2  # the schema rebuilt the model
        return {"items": [*s.items, "b"]}

    builder = StateGraph(Shape)
    builder.add_node("a", a)
    builder.add_node("b", b)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)

    def run(saver: Any) -> tuple[Any, Any]:
        graph = builder.compile(checkpointer=saver, interrupt_before=["b"])
        cfg = {"configurable": {"thread_id": "local-class"}}
        graph.invoke({"inner": Inner(x=1)}, cfg)
        return graph.invoke(None, cfg), graph.get_state(cfg).values

    allowed = [(Inner.__module__, "Inner")]
    with SutramSaver.from_url(db_url, allowed_types=allowed) as ours:
        got = run(ours)
    assert got == run(InMemorySaver(serde=JsonPlusSerializer(allowed_msgpack_modules=allowed)))
    assert got[0]["items"] == ["a", "b"]
    with SutramSaver.from_url(db_url) as strict:  # not allowed: never rebuilt, and the error says how
        with pytest.raises(CheckpointDecodeError, match=r"allowed_types=\[\("):
            strict.get_tuple({"configurable": {"thread_id": "local-class"}})
