"""LlamaIndex: instrumentation handlers and the legacy callback handler write one tree per run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent
from llama_index.core.callbacks import CallbackManager
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms.mock import MockLLM
from llama_index.core.tools import FunctionTool

from sutram_adapters.llama_index import SutramLlamaCallbackHandler, instrument, trace_scope
from sutram_core.traces import StoredSpan, Tracer
from tests.fake_llama import UsageFunctionCallingLLM
from tests.tracing_graphs import only_run, run_tree, walk


def lookup_order(order_id: str = "A-1042") -> str:
    """Look up an order by id."""
    return f"order {order_id}: packed"


@pytest.fixture
def tracer(db_url: str) -> Iterator[Tracer]:
    t = Tracer.from_url(db_url)
    yield t
    t.close()


@pytest.fixture
def instrumented(tracer: Tracer) -> Iterator[Any]:
    inst = instrument(tracer=tracer)
    yield inst
    inst.uninstrument()


def _tree(span: StoredSpan) -> tuple[Any, ...]:
    return (span.name, span.kind, tuple(_tree(c) for c in span.children))


LLM = "UsageFunctionCallingLLM"
STEP = "BaseWorkflowAgent"


def _model_step() -> tuple[Any, ...]:
    return (f"{STEP}.run_agent_step", "node", ((f"{LLM}._prepare_chat_with_tools", "chain", ()),
                                               (f"{LLM}.astream_chat", "llm", ())))


FUNCTION_AGENT_TREE = ("Agent", "agent", (  # FunctionAgent's default name
    (f"{STEP}.init_run", "node", ()),
    (f"{STEP}.setup_agent", "node", ()),
    _model_step(),
    (f"{STEP}.parse_agent_output", "node", ()),
    (f"{STEP}.call_tool", "node", (("FunctionTool.acall", "tool", ()),)),
    (f"{STEP}.aggregate_tool_results", "node", ()),
    (f"{STEP}.setup_agent", "node", ()),
    _model_step(),
    (f"{STEP}.parse_agent_output", "node", ()),
))


async def test_function_agent_with_a_tool_call_is_one_whole_tree(tracer: Tracer, instrumented: Any) -> None:
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup_order)], llm=UsageFunctionCallingLLM())
    assert str(await agent.run("where is my order?")) == "Tool calls complete."
    root = only_run(tracer)
    assert _tree(root) == FUNCTION_AGENT_TREE
    assert root.operation == "invoke_agent"
    models = [s for s in walk(root) if s.kind == "llm"]
    assert [(m.operation, m.input_tokens, m.output_tokens) for m in models] == [("chat", 9, 2), ("chat", 12, 5)]
    assert all(m.request_model == "gpt-4o-mini" and m.response_model == "gpt-4o-mini-2024-07-18" for m in models)
    assert all(m.cost_usd and m.cost_usd > 0 for m in models)
    (tool,) = [s for s in walk(root) if s.kind == "tool"]
    assert (tool.tool_name, tool.operation) == ("lookup_order", "execute_tool")
    assert tool.tool_call_id and tool.tool_call_id.startswith("mock-tool-call-")
    assert instrumented.open_spans == 0


async def test_agent_workflow_runs_nest_and_keep_scope(tracer: Tracer, instrumented: Any) -> None:
    agent = FunctionAgent(name="orders", description="answers order questions",
                          tools=[FunctionTool.from_defaults(lookup_order)], llm=UsageFunctionCallingLLM())
    workflow = AgentWorkflow(agents=[agent], root_agent="orders")
    with trace_scope(thread_id="conv-7", tenant="acme"):
        await workflow.run(user_msg="where is my order?")
    root = only_run(tracer, "acme")
    assert (root.name, root.kind, root.operation, root.thread_id) == ("AgentWorkflow", "workflow", "invoke_workflow", "conv-7")
    spans = walk(root)
    assert {s.thread_id for s in spans} == {"conv-7"}
    assert sum(s.kind == "llm" for s in spans) == 2 and sum(s.kind == "tool" for s in spans) == 1
    assert tracer.store.runs("default") == []


async def test_concurrent_agent_runs_stay_apart(tracer: Tracer, instrumented: Any) -> None:
    import asyncio

    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup_order)], llm=UsageFunctionCallingLLM())
    await asyncio.gather(*(agent.run(f"question {i}") for i in range(5)))
    tracer.flush()
    runs = tracer.store.runs("default")
    assert len(runs) == 5
    for r in runs:
        assert _tree(run_tree(tracer, "default", r.run_id)) == FUNCTION_AGENT_TREE


def test_retrieval_embeddings_and_completion_are_recorded(tracer: Tracer, instrumented: Any) -> None:
    embed = MockEmbedding(embed_dim=8)
    index = VectorStoreIndex.from_documents([Document(text="grinders ship in 3 days"), Document(text="returns")],
                                            embed_model=embed)
    tracer.flush()
    for r in tracer.store.runs("default"):  # the index build is a run of its own
        assert r.status == "ok"
    engine = index.as_query_engine(llm=MockLLM(max_tokens=5), similarity_top_k=1)
    engine.query("when do grinders ship?")
    tracer.flush()
    query_run = next(r for r in tracer.store.runs("default") if "query" in r.name.lower())
    spans = walk(run_tree(tracer, "default", query_run.run_id))
    kinds = {s.kind for s in spans}
    assert {"retriever", "embedding", "llm"} <= kinds
    retriever = next(s for s in spans if s.kind == "retriever")
    assert retriever.attributes["sutram.retrieval.documents"] == 1
    assert any(s.operation == "text_completion" for s in spans if s.kind == "llm")


def test_instrument_twice_does_not_double_spans(tracer: Tracer) -> None:
    instrument(tracer=tracer)
    inst = instrument(tracer=tracer)
    try:
        MockLLM().complete("hello")
    finally:
        inst.uninstrument()
    root = only_run(tracer)
    assert root.children == [] and root.kind == "llm"


def test_legacy_handler_alone_builds_a_tree_per_trace(tracer: Tracer) -> None:
    handler = SutramLlamaCallbackHandler(tracer=tracer, instrumentation=False)
    previous = Settings.callback_manager
    Settings.callback_manager = CallbackManager([handler])
    try:
        index = VectorStoreIndex.from_documents([Document(text="grinders ship in 3 days")],
                                                embed_model=MockEmbedding(embed_dim=8))
        index.as_query_engine(llm=MockLLM(max_tokens=5)).query("when do grinders ship?")
    finally:
        Settings.callback_manager = previous
    tracer.flush()
    query_run = next(r for r in tracer.store.runs("default") if r.name == "query")
    root = run_tree(tracer, "default", query_run.run_id)
    names = {s.name for s in walk(root)}
    assert {"query", "retrieve", "embedding", "llm"} <= names
    (retrieve,) = [s for s in walk(root) if s.kind == "retriever"]
    assert retrieve.parent_id is not None


async def test_legacy_handler_also_sees_agent_and_tool_steps(tracer: Tracer) -> None:
    handler = SutramLlamaCallbackHandler(tracer=tracer)
    try:
        llm = UsageFunctionCallingLLM(callback_manager=CallbackManager([handler]))
        agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup_order)], llm=llm)
        await agent.run("where is my order?")
    finally:
        assert handler.instrumentation is not None
        handler.instrumentation.uninstrument()
    root = only_run(tracer)  # one run, not isolated LLM calls
    assert _tree(root) == FUNCTION_AGENT_TREE  # and no model call twice


def test_a_completion_call_records_its_usage(tracer: Tracer, instrumented: Any) -> None:
    assert UsageFunctionCallingLLM().complete("two words").text == "echo: two words"
    span = only_run(tracer)
    assert (span.kind, span.operation, span.input_tokens, span.output_tokens) == ("llm", "text_completion", 7, 5)
    assert span.response_model == "gpt-4o-mini-2024-07-18" and span.cost_usd and span.cost_usd > 0
