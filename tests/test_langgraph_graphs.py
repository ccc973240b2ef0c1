"""SutramSaver under real LangGraph graphs: the same results as LangGraph's own saver."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

try:  # DeltaChannel came after langgraph 1.1.5, Sutram's floor (make test-lowest runs that)
    from langgraph.channels.delta import DeltaChannel
except ImportError:  # pragma: no cover - the lowest-versions job only
    DeltaChannel = None  # type: ignore[assignment,misc]
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from sutram_adapters.langgraph import SutramSaver


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: int


def chain_graph(n_nodes: int = 5) -> StateGraph:  # type: ignore[type-arg]
    g = StateGraph(ChatState)
    for i in range(n_nodes):
        def node(state: ChatState, i: int = i) -> dict[str, Any]:
            return {"messages": [AIMessage(content=f"node {i} says hi #{len(state['messages'])}")],
                    "turns": state.get("turns", 0) + 1}
        g.add_node(f"n{i}", node)
    g.add_edge(START, "n0")
    for i in range(n_nodes - 1):
        g.add_edge(f"n{i}", f"n{i + 1}")
    g.add_edge(f"n{n_nodes - 1}", END)
    return g


def single_node_graph(state: Any, name: str, node: Any) -> StateGraph:  # type: ignore[type-arg]
    """START -> ``node`` -> END."""
    g = StateGraph(state)
    g.add_node(name, node)
    g.add_edge(START, name)
    g.add_edge(name, END)
    return g


def run_turns(graph: Any, thread: str, turns: int) -> dict[str, Any]:
    cfg = {"configurable": {"thread_id": thread}}
    out: dict[str, Any] = {}
    for t in range(turns):
        out = graph.invoke({"messages": [HumanMessage(content=f"turn {t}", id=f"h{t}")]}, cfg)
    return out


def strip_ids(messages: list[Any]) -> list[tuple[str, str]]:
    return [(m.type, m.content) for m in messages]


def test_sync_graph_matches_in_memory_saver(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        ours = chain_graph().compile(checkpointer=saver)
        ref = chain_graph().compile(checkpointer=InMemorySaver())
        a, b = run_turns(ours, "t1", 6), run_turns(ref, "t1", 6)
        assert strip_ids(a["messages"]) == strip_ids(b["messages"]) and a["turns"] == b["turns"] == 30
        cfg = {"configurable": {"thread_id": "t1"}}
        hist_a = list(ours.get_state_history(cfg))
        hist_b = list(ref.get_state_history(cfg))
        assert len(hist_a) == len(hist_b)
        for sa_, sb in zip(hist_a, hist_b, strict=True):
            assert strip_ids(sa_.values.get("messages", [])) == strip_ids(sb.values.get("messages", []))
            assert sa_.next == sb.next and sa_.metadata["step"] == sb.metadata["step"]


def test_async_graph_with_astream(db_url: str) -> None:
    async def scenario() -> None:
        async with SutramSaver.from_url(db_url) as saver:
            graph = chain_graph().compile(checkpointer=saver)
            cfg = {"configurable": {"thread_id": "t-async"}}
            for t in range(3):
                updates = [u async for u in graph.astream({"messages": [HumanMessage(content=f"q{t}")]}, cfg)]
                assert len(updates) == 5
            state = await graph.aget_state(cfg)
            assert len(state.values["messages"]) == 18 and state.values["turns"] == 15
            # several threads in parallel on one saver
            await asyncio.gather(*(graph.ainvoke({"messages": [HumanMessage(content="x")]},
                                                 {"configurable": {"thread_id": f"p{i}"}}) for i in range(8)))
            for i in range(8):
                s = await graph.aget_state({"configurable": {"thread_id": f"p{i}"}})
                assert len(s.values["messages"]) == 6

    asyncio.run(scenario())


def test_interrupt_and_resume(db_url: str) -> None:
    class S(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]
        approved: bool

    def ask(state: S) -> dict[str, Any]:
        answer = interrupt({"question": "approve?"})
        return {"approved": answer == "yes", "messages": [AIMessage(content=f"got {answer}")]}

    g = single_node_graph(S, "ask", ask)
    with SutramSaver.from_url(db_url) as saver:
        graph = g.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "hitl"}}
        first = graph.invoke({"messages": [HumanMessage(content="go")]}, cfg)
        assert first["__interrupt__"][0].value == {"question": "approve?"}
        assert graph.get_state(cfg).next == ("ask",)
    with SutramSaver.from_url(db_url) as again:  # a new process resumes the paused thread
        graph = g.compile(checkpointer=again)
        done = graph.invoke(Command(resume="yes"), cfg)
        assert done["approved"] is True and done["messages"][-1].content == "got yes"


def test_fork_from_an_older_checkpoint(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        graph = chain_graph(2).compile(checkpointer=saver)
        run_turns(graph, "main", 4)
        cfg = {"configurable": {"thread_id": "main"}}
        history = list(graph.get_state_history(cfg))
        old = next(s for s in history if len(s.values.get("messages", [])) == 3)
        forked = graph.update_state(old.config, {"messages": [HumanMessage(content="edited", id="e1")]})
        out = graph.invoke(None, forked)
        assert strip_ids(out["messages"])[:4] == [("human", "turn 0"), ("ai", "node 0 says hi #1"),
                                                  ("ai", "node 1 says hi #2"), ("human", "edited")]
        # the fork is now the thread's newest checkpoint, and the old line is still in the history
        head = graph.get_state(cfg)
        assert len(head.values["messages"]) == len(out["messages"])
        assert any(s.values.get("messages", [None])[-1:] and strip_ids(s.values["messages"])[-1] == ("ai", "node 1 says hi #11")
                   for s in history)


def test_subgraph_namespaces(db_url: str) -> None:
    inner = chain_graph(2).compile()

    class Outer(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]
        turns: int

    g = single_node_graph(Outer, "inner", inner)
    with SutramSaver.from_url(db_url) as saver:
        graph = g.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "nested"}}
        out = graph.invoke({"messages": [HumanMessage(content="hi")]}, cfg)
        assert len(out["messages"]) == 3
        namespaces = {t.config["configurable"]["checkpoint_ns"] for t in saver.list({"configurable": {"thread_id": "nested"}})}
        assert "" in namespaces and any(ns.startswith("inner:") for ns in namespaces)


def extend(state: list[str], batches: list[list[str]]) -> list[str]:
    return [*state, *(item for batch in batches for item in batch)]


def one_step_delta_graph(snapshot_frequency: int) -> StateGraph:  # type: ignore[type-arg]
    """A one-node graph whose ``log`` is a LangGraph DeltaChannel."""

    # the functional form evaluates the annotation now, while snapshot_frequency is in scope
    S = TypedDict("S", {"log": Annotated[list[str], DeltaChannel(extend, snapshot_frequency=snapshot_frequency)]})  # noqa: UP013

    def step(state: Any) -> dict[str, Any]:
        return {"log": [f"entry {len(state.get('log', []))}"]}

    return single_node_graph(S, "step", step)


needs_delta = pytest.mark.skipif(DeltaChannel is None, reason="this langgraph has no DeltaChannel (before 1.2)")


@needs_delta
def test_delta_channel_survives_prune_keep_latest(db_url: str) -> None:
    g = one_step_delta_graph(snapshot_frequency=4)
    cfg = {"configurable": {"thread_id": "delta"}}
    reference = g.compile(checkpointer=InMemorySaver())
    for i in range(7):
        reference.invoke({"log": [f"input {i}"]}, cfg)
    reference.invoke({"log": ["after prune"]}, cfg)
    with SutramSaver.from_url(db_url) as saver:
        graph = g.compile(checkpointer=saver)
        for i in range(7):
            graph.invoke({"log": [f"input {i}"]}, cfg)
        before = graph.get_state(cfg).values["log"]
        assert len(before) == 14
        total = len(list(saver.list(cfg)))
        saver.prune(["delta"], strategy="keep_latest")
        kept = len(list(saver.list(cfg)))
        assert 1 < kept < total  # the ancestors back to the last snapshot, not the whole thread
        assert graph.get_state(cfg).values["log"] == before
        graph.invoke({"log": ["after prune"]}, cfg)
        assert graph.get_state(cfg).values["log"] == reference.get_state(cfg).values["log"]


@needs_delta
def test_delta_channel_history_matches_langgraphs_default_walk(db_url: str) -> None:
    """The few-query override returns what BaseCheckpointSaver's ancestor walk returns."""
    from langgraph.checkpoint.base import BaseCheckpointSaver

    class S(TypedDict):
        log: Annotated[list[str], DeltaChannel(extend, snapshot_frequency=3)]
        other: Annotated[list[str], DeltaChannel(extend, snapshot_frequency=5)]

    def step(state: S) -> dict[str, Any]:
        n = len(state.get("log", []))
        return {"log": [f"entry {n}"], "other": [f"o{n}"] if n % 2 else []}

    g = StateGraph(S)
    g.add_node("a", step)
    g.add_node("b", step)
    g.add_edge(START, "a")
    g.add_edge(START, "b")  # two tasks write in one super-step: order within a step matters
    g.add_edge("a", END)
    g.add_edge("b", END)
    with SutramSaver.from_url(db_url) as saver:
        graph = g.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "dh"}}
        for i in range(9):
            graph.invoke({"log": [f"in {i}"]}, cfg)
        history = list(saver.list(cfg))
        fork_from = history[len(history) // 2].config
        graph.update_state(fork_from, {"log": ["forked"]})
        graph.invoke(None, {"configurable": {"thread_id": "dh"}})
        for tup in list(saver.list(cfg))[::3]:
            for channels in (["log"], ["log", "other"], ["missing"]):
                ours = saver.get_delta_channel_history(config=tup.config, channels=channels)
                ref = BaseCheckpointSaver.get_delta_channel_history(saver, config=tup.config, channels=channels)
                assert dict(ours) == dict(ref)
        assert graph.get_state(cfg).values["log"][-1].startswith("entry")


@needs_delta
def test_async_delta_channel_history_matches(db_url: str) -> None:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    g = one_step_delta_graph(snapshot_frequency=2)

    async def scenario() -> None:
        async with SutramSaver.from_url(db_url) as saver:
            graph = g.compile(checkpointer=saver)
            cfg = {"configurable": {"thread_id": "adh"}}
            for i in range(5):
                await graph.ainvoke({"log": [f"in {i}"]}, cfg)
            ours = await saver.aget_delta_channel_history(config=cfg, channels=["log"])
            ref = await BaseCheckpointSaver.aget_delta_channel_history(saver, config=cfg, channels=["log"])
            assert dict(ours) == dict(ref)
            assert (await graph.aget_state(cfg)).values["log"][-1] == "entry 9"

    asyncio.run(scenario())

