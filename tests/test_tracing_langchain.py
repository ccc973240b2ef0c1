"""SutramCallbackHandler: one correctly nested span tree per run, whatever the concurrency."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ContextThreadPoolExecutor
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict

from sutram_adapters.demo.agent import build_agent
from sutram_adapters.langchain import SutramCallbackHandler
from sutram_adapters.langgraph import SutramSaver
from sutram_core.traces import Tracer
from tests.fake_models import EchoChatModel
from tests.tracing_graphs import (
    FAN_OUT_SHAPE,
    fan_out_graph,
    llm,
    node,
    only_run,
    run_tree,
    shape,
    walk,
)


@pytest.fixture
def tracer(db_url: str) -> Any:
    t = Tracer.from_url(db_url)
    yield t
    t.close()


class _S(TypedDict):
    text: str


def _one_node_graph(model: EchoChatModel) -> Any:
    def answer(state: _S) -> dict[str, Any]:
        return {"text": str(model.invoke(state["text"]).content)}

    g = StateGraph(_S)
    g.add_node("answer", answer)
    g.add_edge(START, "answer")
    g.add_edge("answer", END)
    return g


def test_sync_invoke_nests_the_model_call_under_its_node(tracer: Tracer) -> None:
    app = _one_node_graph(EchoChatModel()).compile()
    app.invoke({"text": "hello"}, {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    root = only_run(tracer)
    assert shape(root) == ("LangGraph", "workflow", (node("answer", llm()),))
    model = root.children[0].children[0]
    assert (model.operation, model.input_tokens, model.output_tokens) == ("chat", 4, 2)
    assert model.request_model == "gpt-4o-mini" and model.response_model == "gpt-4o-mini-2024-07-18"
    assert model.cost_usd == pytest.approx((4 * 0.15 + 2 * 0.60) / 1e6)


async def test_ainvoke_with_parallel_branches_and_send_builds_the_whole_tree(tracer: Tracer) -> None:
    app = fan_out_graph(EchoChatModel()).compile()
    await app.ainvoke({"topics": ["a", "b", "c"], "notes": []}, {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    root = only_run(tracer)
    assert shape(root) == FAN_OUT_SHAPE
    nodes = {s.span_id: s for s in walk(root) if s.kind == "node"}
    assert {s.step for s in nodes.values()} == {1, 2, 3}
    for s in walk(root):  # every model call hangs off the node that made it, on the node's task
        if s.kind == "llm":
            assert s.parent_id in nodes and s.task_id == nodes[s.parent_id].task_id
    assert len({s.task_id for s in nodes.values()}) == 7


async def test_astream_nests_like_invoke(tracer: Tracer) -> None:
    app = fan_out_graph(EchoChatModel()).compile()
    chunks = [c async for c in app.astream({"topics": ["x", "y", "z"], "notes": []},
                                            {"callbacks": [SutramCallbackHandler(tracer=tracer)]}, stream_mode="updates")]
    assert chunks
    assert shape(only_run(tracer)) == FAN_OUT_SHAPE


async def test_astream_events_nests_like_invoke(tracer: Tracer) -> None:
    app = fan_out_graph(EchoChatModel()).compile()
    events = [e async for e in app.astream_events({"topics": ["x", "y", "z"], "notes": []},
                                                   {"callbacks": [SutramCallbackHandler(tracer=tracer)]}, version="v2")]
    assert any(e["event"] == "on_chat_model_end" for e in events)
    assert shape(only_run(tracer)) == FAN_OUT_SHAPE


def test_model_calls_in_worker_threads_nest_under_their_node(tracer: Tracer) -> None:
    model = EchoChatModel()

    def answer(state: _S, config: RunnableConfig) -> dict[str, Any]:
        with ThreadPoolExecutor(2) as pool:  # the config travels explicitly
            explicit = list(pool.map(lambda q: model.invoke(q, config).content, ["a", "b"]))
        with ContextThreadPoolExecutor(2) as pool:  # the config travels in the context
            implicit = list(pool.map(lambda q: model.invoke(q).content, ["c", "d"]))
        return {"text": " ".join(map(str, explicit + implicit))}

    g = StateGraph(_S)
    g.add_node("answer", answer)
    g.add_edge(START, "answer")
    g.add_edge("answer", END)
    g.compile().invoke({"text": ""}, {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    assert shape(only_run(tracer)) == ("LangGraph", "workflow", (node("answer", llm(), llm(), llm(), llm()),))


async def test_one_handler_shared_by_concurrent_invocations_keeps_runs_apart(tracer: Tracer) -> None:
    handler = SutramCallbackHandler(tracer=tracer)
    app = fan_out_graph(EchoChatModel()).compile()
    sync_app = _one_node_graph(EchoChatModel()).compile()

    def sync_runs(i: int) -> None:
        for j in range(3):
            sync_app.invoke({"text": f"s{i}{j}"}, {"callbacks": [handler], "configurable": {"thread_id": f"sync-{i}-{j}"}})

    threads = [threading.Thread(target=sync_runs, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    await asyncio.gather(*(
        app.ainvoke({"topics": ["a", "b", "c"], "notes": []}, {"callbacks": [handler], "configurable": {"thread_id": f"a-{i}"}})
        for i in range(8)
    ))
    for t in threads:
        t.join()
    tracer.flush()
    runs = tracer.store.runs("default", limit=100)
    assert len(runs) == 17
    for r in runs:
        root = run_tree(tracer, "default", r.run_id)
        want = FAN_OUT_SHAPE if r.thread_id.startswith("a-") else ("LangGraph", "workflow", (node("answer", llm()),))
        assert shape(root) == want, r.thread_id
        assert {s.thread_id for s in walk(root)} == {r.thread_id}
    assert handler.open_spans == 0


def test_streamed_response_keeps_its_token_counts(tracer: Tracer) -> None:
    model = EchoChatModel()

    def answer(state: _S) -> dict[str, Any]:
        text = "".join(str(c.content) for c in model.stream(state["text"]))
        return {"text": text}

    g = StateGraph(_S)
    g.add_node("answer", answer)
    g.add_edge(START, "answer")
    g.add_edge("answer", END)
    out = list(g.compile().stream({"text": "count my tokens"}, {"callbacks": [SutramCallbackHandler(tracer=tracer)]},
                                  stream_mode="messages"))
    assert out, "stream_mode=messages yields the model's chunks"
    model_span = only_run(tracer).children[0].children[0]
    assert (model_span.input_tokens, model_span.output_tokens) == (6, 4)
    assert model_span.cost_usd is not None and model_span.cost_usd > 0


def test_usage_reported_only_by_chunks_is_still_counted(tracer: Tracer) -> None:
    from uuid import uuid4

    from langchain_core.messages import AIMessageChunk
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult

    handler = SutramCallbackHandler(tracer=tracer)
    rid = uuid4()
    handler.on_chat_model_start({"name": "m"}, [[HumanMessage("hi")]], run_id=rid, metadata={"ls_model_name": "gpt-4o"})
    chunk = AIMessageChunk(content="x", usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10})
    handler.on_llm_new_token("x", chunk=ChatGenerationChunk(message=chunk), run_id=rid)
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=AIMessageChunk(content="x"))]]), run_id=rid)
    span = only_run(tracer)
    assert (span.input_tokens, span.output_tokens, span.request_model) == (7, 3, "gpt-4o")


def test_tool_spans_carry_tool_name_and_call_id(tracer: Tracer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sutram_adapters.demo.agent.STEP_SECONDS", 0.0)
    app = build_agent().compile()
    app.invoke({"messages": [HumanMessage("where is my order A-1042?")]},
               {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    spans = walk(only_run(tracer))
    tools = [s for s in spans if s.kind == "tool"]
    assert [(s.tool_name, s.tool_call_id, s.operation) for s in tools] == [
        ("lookup_order", "call_1", "execute_tool"), ("estimate_shipping", "call_2", "execute_tool")]
    assert all(s.parent_id and next(p for p in spans if p.span_id == s.parent_id).kind in ("node", "chain") for s in tools)
    assert sum(s.kind == "llm" for s in spans) == 6  # brief: 3 questions; agent: 3 turns


class _Shelf(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(page_content=f"about {query}"), Document(page_content="more")]


def test_lcel_chain_with_retriever_is_one_run(tracer: Tracer) -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    chain = {"question": lambda x: x, "docs": _Shelf()} | prompt | EchoChatModel() | StrOutputParser()
    assert chain.invoke("grinders", {"callbacks": [SutramCallbackHandler(tracer=tracer)]}) == "echo: grinders"
    root = only_run(tracer)
    kinds = [s.kind for s in walk(root)]
    assert root.kind == "workflow" and root.operation == "invoke_workflow"
    assert kinds.count("retriever") == 1 and kinds.count("llm") == 1
    retriever = next(s for s in walk(root) if s.kind == "retriever")
    assert retriever.operation == "retrieval" and retriever.attributes["sutram.retrieval.documents"] == 2


def test_a_failing_node_marks_its_span_and_the_run_as_errors(tracer: Tracer) -> None:
    def boom(state: _S) -> dict[str, Any]:
        raise ValueError("bad order id")

    g = StateGraph(_S)
    g.add_node("boom", boom)
    g.add_edge(START, "boom")
    g.add_edge("boom", END)
    with pytest.raises(ValueError):
        g.compile().invoke({"text": ""}, {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    root = only_run(tracer)
    assert (root.status, root.error_type) == ("error", "ValueError")
    assert (root.children[0].status, root.children[0].error_message) == ("error", "bad order id")
    assert tracer.store.runs("default")[0].errors == 2


def test_retries_are_counted_on_the_retrying_span(tracer: Tracer) -> None:
    model = EchoChatModel(fail_times=2).with_retry(stop_after_attempt=3, wait_exponential_jitter=False,
                                                  retry_if_exception_type=(ConnectionError,))
    assert model.invoke("hi", {"callbacks": [SutramCallbackHandler(tracer=tracer)]}).content == "echo: hi"
    root = only_run(tracer)
    assert root.attributes["sutram.retries"] == 2
    assert "ConnectionError" in root.attributes["sutram.retry.last_error"]
    assert [c.status for c in root.children] == ["error", "error", "ok"]


def test_an_interrupt_is_not_an_error(tracer: Tracer, tmp_path: Path) -> None:
    def ask(state: _S) -> dict[str, Any]:
        return {"text": interrupt("approve?")}

    g = StateGraph(_S)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    from langgraph.checkpoint.memory import InMemorySaver

    g.compile(checkpointer=InMemorySaver()).invoke(
        {"text": ""}, {"callbacks": [SutramCallbackHandler(tracer=tracer)], "configurable": {"thread_id": "t"}})
    root = only_run(tracer)
    assert root.status == "ok" and root.children[0].status == "ok"
    assert root.children[0].attributes["sutram.interrupted"] == "GraphInterrupt"


def test_each_node_span_links_to_the_checkpoint_it_produced(tracer: Tracer, db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        app = fan_out_graph(EchoChatModel()).compile(checkpointer=saver)
        conf: Any = {"callbacks": [SutramCallbackHandler(tracer=tracer)], "configurable": {"thread_id": "t1"}}
        asyncio.run(app.ainvoke({"topics": ["a"], "notes": []}, conf))
        by_step = {t.metadata["step"]: t.config["configurable"]["checkpoint_id"]
                   for t in saver.list({"configurable": {"thread_id": "t1"}})}
    nodes = [s for s in walk(only_run(tracer)) if s.kind == "node"]
    assert len(nodes) == 5
    for s in nodes:
        assert s.checkpoint_id == by_step[s.step], s.name
        assert s.thread_id == "t1" and s.checkpoint_ns == ""


def test_tenant_comes_from_the_handler_or_the_invocation(tracer: Tracer) -> None:
    app = _one_node_graph(EchoChatModel()).compile()
    app.invoke({"text": "a"}, {"callbacks": [SutramCallbackHandler(tracer=tracer, tenant="acme")]})
    app.invoke({"text": "b"}, {"callbacks": [SutramCallbackHandler(tracer=tracer)], "metadata": {"tenant_id": "globex"}})
    tracer.flush()
    assert len(tracer.store.runs("acme")) == 1
    assert len(tracer.store.runs("globex")) == 1
    assert tracer.store.runs("default") == []


def test_no_argument_handler_writes_where_sutram_url_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("SUTRAM_URL", url)
    handler = SutramCallbackHandler()
    _one_node_graph(EchoChatModel()).compile().invoke({"text": "a"}, {"callbacks": [handler]})
    handler.flush()
    with Tracer.from_url(url) as reader:
        assert [r.name for r in reader.store.runs("default")] == ["LangGraph"]


def test_a_handler_holds_no_spans_between_invocations(tracer: Tracer) -> None:
    handler = SutramCallbackHandler(tracer=tracer)
    app = _one_node_graph(EchoChatModel()).compile()
    for i in range(20):
        app.invoke({"text": str(i)}, {"callbacks": [handler]})
    assert handler.open_spans == 0
    tracer.flush()
    assert len(tracer.store.runs("default", limit=100)) == 20


def test_a_completion_llm_is_a_text_completion_span(tracer: Tracer) -> None:
    from langchain_core.language_models import FakeListLLM

    assert FakeListLLM(responses=["done"]).invoke("go", {"callbacks": [SutramCallbackHandler(tracer=tracer)]}) == "done"
    span = only_run(tracer)
    assert (span.kind, span.operation, span.parent_id) == ("llm", "text_completion", None)
    assert span.inputs == '["go"]'


def test_content_off_keeps_no_inputs_in_the_handler_either(db_url: str) -> None:
    handler = SutramCallbackHandler(db_url, content=False)
    _one_node_graph(EchoChatModel()).compile().invoke({"text": "secret plan"}, {"callbacks": [handler]})
    handler.close()
    with Tracer.from_url(db_url) as reader:
        run = reader.store.runs("default")[0]
        spans = reader.store.run_spans("default", run.run_id)
    assert len(spans) == 3 and all(s.inputs is None and s.outputs is None for s in spans)
    assert sum(s.input_tokens or 0 for s in spans) == 5  # metadata is kept


def test_a_child_that_never_ends_is_recorded_as_unfinished_when_its_run_ends(tracer: Tracer) -> None:
    from uuid import uuid4

    handler = SutramCallbackHandler(tracer=tracer)
    root, child = uuid4(), uuid4()
    handler.on_chain_start({}, {"q": 1}, run_id=root, name="graph")
    handler.on_chat_model_start({}, [[HumanMessage("hi")]], run_id=child, parent_run_id=root, name="model")
    handler.on_chain_end({"a": 1}, run_id=root)  # the stream was abandoned: the model never ended
    assert handler.open_spans == 0
    run = only_run(tracer)
    (model,) = run.children
    assert (run.status, model.status, model.error_type) == ("ok", "error", "SpanNotEnded")
    assert model.attributes["sutram.unfinished"] is True
