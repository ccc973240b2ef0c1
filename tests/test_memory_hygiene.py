"""Memory hygiene, as a new user meets it: facts split from questions, tool calls remembered
as what happened, run memories kept out of users' searches, provenance of graph writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, InvalidNamespaceError
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool
from typing_extensions import TypedDict

from sutram_adapters.langgraph import SutramStore, durable, run_memory_namespace
from sutram_adapters.llama_index import (
    SutramChatStore,
    SutramEpisodicBlock,
    SutramFactBlock,
    SutramMemory,
    close_shared_memories,
)
from sutram_core.memory import MemoryStore
from sutram_core.memory.sentences import split_sentences, statements
from tests.fake_llama import RecallLLM, UsageFunctionCallingLLM
from tests.memory_support import WordHashEmbedder


@pytest.fixture(autouse=True)
def _close_shared() -> Iterator[None]:
    yield
    close_shared_memories()


# -- facts are statements, sentence by sentence ----------------------------------------------


@pytest.mark.parametrize(("text", "kept"), [
    ("I take my coffee with oat milk. Where is order A-1042?", ["I take my coffee with oat milk."]),
    ("Where is order A-1042? I take my coffee with oat milk!", ["I take my coffee with oat milk!"]),
    ("My plan is 3.5 GB, e.g. the small one. Can you upgrade it?", ["My plan is 3.5 GB, e.g. the small one."]),
    ("Dr. Okafor is my doctor. Is she in today?", ["Dr. Okafor is my doctor."]),
    ("My invoice is at https://billing.example.com/inv?id=77. Why was I charged twice?",
     ["My invoice is at https://billing.example.com/inv?id=77."]),
    ("Thanks! I moved to Porto.\nwhere is my parcel", ["I moved to Porto."]),
    ("Is it raining?", []),
])
def test_statements_are_kept_and_questions_dropped(text: str, kept: list[str]) -> None:
    assert statements(text) == kept


def test_decimals_ids_and_abbreviations_do_not_split_a_sentence() -> None:
    assert split_sentences("Order A-1042 costs 3.50 EUR, i.e. less than ORD-19.494. Mr. J. Smith paid.") == [
        "Order A-1042 costs 3.50 EUR, i.e. less than ORD-19.494.", "Mr. J. Smith paid."]


async def test_a_fact_said_with_a_question_is_kept_and_recalled_later(db_url: str) -> None:
    memory = SutramMemory.from_defaults(session_id="mon", user_id="alice", tenant="acme", url=db_url)
    await FunctionAgent(tools=[], llm=RecallLLM()).run("I take my coffee with oat milk. Where is order A-1042?",
                                                        memory=memory)
    facts = MemoryStore.from_url(db_url, tenant="acme", embedder=False)
    try:
        stored = [r.text for r in facts.list(("facts", "alice"))]
    finally:
        facts.close()
    assert stored == ["I take my coffee with oat milk."]
    later = SutramMemory.from_defaults(session_id="fri", user_id="alice", tenant="acme", url=db_url)
    answer = await FunctionAgent(tools=[], llm=RecallLLM()).run("How do I take my coffee?", memory=later)
    assert "oat milk" in str(answer) and "A-1042" not in str(answer)


async def test_the_fact_block_keeps_each_statement_of_a_message_as_its_own_fact(db_url: str) -> None:
    block = SutramFactBlock(url=db_url, tenant="acme", namespace=["facts", "bob"])
    await block.aput([ChatMessage(role="user", content="I live in Lisbon. I am allergic to peanuts. Hi? Thanks!"),
                      ChatMessage(role="assistant", content="Noted. You live in Lisbon.")])
    assert sorted(r.text for r in block.memory.list(("facts", "bob"))) == [
        "I am allergic to peanuts.", "I live in Lisbon."]


# -- tool calls are remembered as what happened ------------------------------------------------


def get_weather(city: str = "Paris") -> dict[str, Any]:
    """The weather in a city."""
    return {"city": city, "temp_c": 18, "sky": "sunny", "raw": {"station": "LFPG", "readings": list(range(400))}}


async def test_tool_calls_are_remembered_as_readable_bounded_text_and_kept_whole(db_url: str) -> None:
    episodes = SutramEpisodicBlock(url=db_url, tenant="acme", namespace=["episodes", "carol"], eager=True)
    memory = SutramMemory.from_defaults(session_id="s-tools", user_id="carol", tenant="acme", url=db_url,
                                        memory_blocks=[episodes])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(get_weather)], llm=UsageFunctionCallingLLM())
    await agent.run("What is the weather like?", memory=memory)

    recalled = [r.text for r in episodes.memory.list(("episodes", "carol"), order="key")]
    assert "assistant: called tool get_weather(city=Paris)" in recalled
    (result,) = [t for t in recalled if t.startswith("tool ")]
    assert result.startswith("tool get_weather returned: city: Paris, temp_c: 18, sky: sunny")
    assert len(result) <= 400 and "{" not in result.split("raw:")[0]

    chat = SutramChatStore(url=db_url, tenant="acme")
    records = chat.memory.list(("chat", "s-tools"), order="key")
    texts = [r.text for r in records]
    assert "called tool get_weather(city=Paris)" in texts
    assert any(t.startswith("tool get_weather returned: city: Paris") and len(t) <= 400 for t in texts)
    # the chat store still gives back every message whole: the call and the full result
    messages = await chat.get_messages("s-tools")
    call = next(m for m in messages if any(b.block_type == "tool_call" for b in m.blocks))
    answer = next(m for m in messages if m.role.value == "tool")
    assert call.blocks[0].tool_name == "get_weather"  # type: ignore[union-attr]
    assert "'readings': [0, 1, 2" in (answer.content or "") and len(answer.content or "") > 1000


async def test_openai_style_tool_calls_and_a_result_added_later_are_named(db_url: str) -> None:
    chat = SutramChatStore(url=db_url, tenant="acme")
    call = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "lookup_order", "arguments": '{"order_id": "A-1042", "verbose": true}'}}]})
    await chat.add_message("s-oa", call)
    # the result arrives in a later call and does not name its tool
    await chat.add_message("s-oa", ChatMessage(role="tool", content='{"status": "shipped", "eta": "2026-12-02"}',
                                               additional_kwargs={"tool_call_id": "call_1"}))
    texts = [r.text for r in chat.memory.list(("chat", "s-oa"), order="key")]
    assert texts == ["called tool lookup_order(order_id=A-1042, verbose=true)",
                     "tool lookup_order returned: status: shipped, eta: 2026-12-02"]
    hits = chat.memory.search("order A-1042 shipped", namespace=("chat", "s-oa"), mode="keyword")
    assert hits and (await chat.get_messages("s-oa"))[0].additional_kwargs["tool_calls"][0]["id"] == "call_1"


# -- run outcomes live in Sutram's own namespace -------------------------------------------------

INDEX = {"dims": 64, "embed": WordHashEmbedder(), "fields": ["text"]}


class Chat(TypedDict):
    topic: str


def _graph_with_store(store: BaseStore, node: Any) -> Any:
    builder = StateGraph(Chat)
    builder.add_node("remember", node)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", END)
    return builder.compile(store=store)


def test_run_memories_stay_out_of_searches_that_do_not_ask_for_them(db_url: str) -> None:
    def remember(state: Chat, *, store: BaseStore) -> dict[str, Any]:
        store.put(("users", "u1"), "pref", {"text": "the user's run of bad luck: the order completed late"})
        return {}

    with SutramStore.from_url(db_url, tenant="acme", index=INDEX) as store:  # type: ignore[arg-type]
        with durable(_graph_with_store(store, remember), url=db_url, tenant="acme", embedder=WordHashEmbedder(),
                     trace=False) as runner:
            runner.invoke({"topic": "tea"}, thread_id="t-run", run_id="r-run")
        # LangGraph's store API, empty prefix: only the app's own items
        for query in ("run completed", None):
            assert [(i.namespace, i.key) for i in store.search((), query=query)] == [(("users", "u1"), "pref")]
        assert store.list_namespaces() == [("users", "u1")]
        assert store.list_namespaces(suffix=("g",)) == [] and store.list_namespaces(max_depth=1) == [("users",)]
        # ... and on purpose
        (run,) = store.search(("sutram", "runs"), query="run completed")
        assert run.key == "r-run" and "completed" in run.value["text"]
        assert store.list_namespaces(prefix=("sutram",)) == [run_memory_namespace("LangGraph")]
        with pytest.raises(InvalidNamespaceError, match="read-only through SutramStore"):
            store.put(("sutram", "runs", "LangGraph"), "forged", {"text": "run r-x completed"})
        with pytest.raises(InvalidNamespaceError):
            store.delete(("sutram", "runs", "LangGraph"), "r-run")

    with MemoryStore.from_url(db_url, tenant="acme", embedder=WordHashEmbedder()) as memory:
        for mode in ("hybrid", "vector", "keyword"):  # the SQLite vector index leaves them out too
            found = memory.search("run r-run of graph completed tokens", mode=mode)
            assert [h.record.key for h in found] == ["pref"], mode
        assert memory.count() == 1 and [r.key for r in memory.list()] == ["pref"]
        assert memory.list_namespaces() == [("users", "u1")]
        assert [h.record.key for h in memory.search("completed", namespace=run_memory_namespace())] == ["r-run"]
        assert memory.count(("sutram",)) == 1
    with MemoryStore.from_url(db_url, tenant="globex", embedder=WordHashEmbedder()) as other:
        assert other.search("completed", namespace=("sutram", "runs")) == []  # tenants stay apart here too


# -- writes from a traced graph node say where they came from ----------------------------------


def _remember_and_recall(state: Chat, *, store: BaseStore) -> dict[str, Any]:
    store.put(("users", "u1"), "pref", {"text": "likes green tea"})
    store.search(("users",), query="tea")
    return {}


async def _aremember_and_recall(state: Chat, *, store: BaseStore) -> dict[str, Any]:
    await store.aput(("users", "u1"), "apref", {"text": "likes oolong"})
    await store.asearch(("users",), query="oolong")
    return {}


def _memory_spans(db_url: str, run_id: str) -> dict[str, Any]:
    from sutram_core.traces import open_trace_store

    with open_trace_store(db_url) as traces:
        spans = traces.run_spans("acme", run_id)
    by_id = {sp.span_id: sp for sp in spans}
    return {sp.name: (sp, by_id[sp.parent_id]) for sp in spans if sp.kind == "memory"}


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_put_in_a_traced_node_records_run_thread_checkpoint_and_span(db_url: str,
                                                                             asynchronous: bool) -> None:
    from sutram_adapters.langchain import SutramCallbackHandler
    from sutram_adapters.langgraph import SutramSaver
    from sutram_core.traces import open_trace_store

    handler = SutramCallbackHandler(url=db_url, tenant="acme")
    key = "apref" if asynchronous else "pref"
    with SutramStore.from_url(db_url, tenant="acme", index=INDEX) as store, \
            SutramSaver.from_url(db_url, tenant="acme") as saver:  # type: ignore[arg-type]
        graph = _graph_with_store(store, _aremember_and_recall if asynchronous else _remember_and_recall)
        graph = graph.copy(update={"checkpointer": saver})
        config = {"callbacks": [handler], "configurable": {"thread_id": "t-prov"}}
        if asynchronous:
            await graph.ainvoke({"topic": "tea"}, config)
        else:
            graph.invoke({"topic": "tea"}, config)
        checkpoints = {c.config["configurable"]["checkpoint_id"] for c in saver.list(
            {"configurable": {"thread_id": "t-prov"}})}
        handler.flush()
        with open_trace_store(db_url) as traces:
            (run,) = traces.runs("acme")
        record = store.memory.get(("users", "u1"), key)
    assert record is not None
    prov = record.provenance
    assert (prov.run_id, prov.thread_id) == (run.run_id, "t-prov")
    assert prov.checkpoint_id in checkpoints  # the checkpoint the node's step started from
    spans = _memory_spans(db_url, run.run_id)
    put, node = spans["memory put"]
    assert prov.span_id == put.span_id and node.name == "remember"
    search, node = spans["memory search"]  # the read is in the same run, under the same node
    assert search.operation == "search_memory" and node.name == "remember" and f"users/u1:{key}" in search.outputs


def test_a_put_in_a_durable_run_names_the_durable_run(db_url: str) -> None:
    with SutramStore.from_url(db_url, tenant="acme", index=INDEX) as store:  # type: ignore[arg-type]
        with durable(_graph_with_store(store, _remember_and_recall), url=db_url, tenant="acme",
                     embedder=WordHashEmbedder()) as runner:
            runner.invoke({"topic": "tea"}, thread_id="t-dur", run_id="r-dur")
        record = store.memory.get(("users", "u1"), "pref")
        store.put(("users", "u1"), "later", {"text": "outside any run"})
        later = store.memory.get(("users", "u1"), "later")
    assert record is not None and later is not None and later.provenance.as_dict() == {}
    prov = record.provenance
    assert (prov.run_id, prov.thread_id) == ("r-dur", "t-dur") and prov.checkpoint_id and prov.span_id
    from sutram_core.traces import open_trace_store

    with open_trace_store(db_url) as store_of_traces:
        (trace,) = store_of_traces.runs("acme")
    spans = _memory_spans(db_url, trace.run_id)
    assert spans["memory put"][0].span_id == prov.span_id and "memory search" in spans


# -- hostile input --------------------------------------------------------------------------------


def test_a_long_line_of_periods_is_split_in_linear_time() -> None:
    import time

    started = time.perf_counter()
    assert statements("a. " * 400_000) == ["a. " * 399_999 + "a."]  # single letters are initials
    assert len(split_sentences("Yes. " * 200_000)) == 200_000
    # quadratic scanning took about 50 s for the first line; linear takes about 2 s
    assert time.perf_counter() - started < 15


async def test_a_pasted_document_keeps_a_bounded_number_of_facts(db_url: str) -> None:
    from sutram_adapters.llama_index.memory import FACTS_PER_MESSAGE

    block = SutramFactBlock(url=db_url, tenant="acme", namespace=["facts", "dora"])
    await block.aput([ChatMessage(role="user", content=" ".join(f"Item {i} weighs {i}.5 kg." for i in range(500)))])
    assert block.memory.count(("facts", "dora")) == FACTS_PER_MESSAGE


async def test_hundreds_of_tool_calls_or_a_huge_result_stay_bounded(db_url: str) -> None:
    chat = SutramChatStore(url=db_url, tenant="acme")
    calls = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [
        {"id": f"c{i}", "function": {"name": "refund", "arguments": '{"order": "' + "9" * 5000 + '"}'}}
        for i in range(300)]})
    deep = ChatMessage(role="tool", content="[" * 50_000 + "]" * 50_000, additional_kwargs={"tool_call_id": "c1"})
    await chat.add_messages("s-big", [calls, deep])
    call_text, result_text = (r.text for r in chat.memory.list(("chat", "s-big"), order="key"))
    assert len(call_text) < 9 * 400 and call_text.endswith("and 292 more tool calls")
    assert result_text.startswith("tool refund returned: [[[") and len(result_text) <= 400
    assert len((await chat.get_messages("s-big"))[0].additional_kwargs["tool_calls"]) == 300


@pytest.mark.parametrize("passed", ["list", "manager"])
def test_a_durable_run_keeps_one_sutram_handler_whatever_the_caller_passes(db_url: str, passed: str) -> None:
    from langchain_core.callbacks import CallbackManager

    from sutram_adapters.langchain import SutramCallbackHandler
    from sutram_core.traces import open_trace_store

    def spans_of(thread: str, callbacks: Any) -> list[Any]:
        with SutramStore.from_url(db_url, tenant="acme", index=INDEX) as store:  # type: ignore[arg-type]
            with durable(_graph_with_store(store, _remember_and_recall), url=db_url, tenant="acme",
                         embedder=WordHashEmbedder()) as runner:
                runner.invoke({"topic": "tea"}, thread_id=thread, config={"callbacks": callbacks})
        with open_trace_store(db_url) as traces:
            (run,) = traces.runs("acme", thread_id=thread)
            return traces.run_spans("acme", run.run_id)

    alone = spans_of("t-alone", None)
    mine = SutramCallbackHandler(url=db_url, tenant="acme")
    callbacks = [mine] if passed == "list" else CallbackManager(handlers=[mine], inheritable_handlers=[mine])
    both = spans_of("t-both", callbacks)
    assert sorted((s.kind, s.name) for s in both) == sorted((s.kind, s.name) for s in alone)
    assert sum(s.kind == "memory" for s in both) == 2
    mine.flush()
    with open_trace_store(db_url) as traces:
        assert len(traces.runs("acme", thread_id="t-both")) == 1  # no second trace from the caller's handler
