"""SutramStore as LangGraph's BaseStore: differential against InMemoryStore, graphs, TTL, async."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from sutram_adapters.langgraph import SutramSaver, SutramStore
from tests.memory_support import WordHashEmbedder

INDEX = {"dims": 64, "embed": WordHashEmbedder(), "fields": ["text"]}


@pytest.fixture
def store(mem_url: str) -> Iterator[SutramStore]:
    with SutramStore.from_url(mem_url, tenant="acme", index=INDEX) as s:  # type: ignore[arg-type]
        yield s


# -- differential ------------------------------------------------------------------------------

_labels = st.sampled_from(["users", "u1", "u2", "prefs", "docs"])
_ns = st.lists(_labels, min_size=1, max_size=3).map(tuple)
_words = st.lists(st.sampled_from(["tea", "coffee", "green", "cake", "bike", "red"]), min_size=1, max_size=4)
# "n" is always present: InMemoryStore raises TypeError for a range filter on a missing
# field (float(None)), where Sutram simply does not match the item.
_value = st.fixed_dictionaries({"text": _words.map(" ".join), "n": st.integers(0, 5)}, optional={
    "color": st.sampled_from(["red", "blue"]),
})
_filter = st.one_of(
    st.none(),
    st.fixed_dictionaries({"color": st.sampled_from(["red", "blue"])}),
    st.fixed_dictionaries({"n": st.fixed_dictionaries({}, optional={
        "$gt": st.integers(0, 5), "$lte": st.integers(0, 5), "$ne": st.integers(0, 5)}).filter(bool)}),
)
_op = st.one_of(
    st.tuples(st.just("put"), _ns, st.sampled_from(["a", "b", "c"]), _value),
    st.tuples(st.just("delete"), _ns, st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("get"), _ns, st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("search"), st.lists(_labels, max_size=2).map(tuple), st.one_of(st.none(), _words.map(" ".join)),
              _filter),
    st.tuples(st.just("list"), st.one_of(st.none(), st.lists(_labels, min_size=1, max_size=2).map(tuple)),
              st.one_of(st.none(), st.lists(st.sampled_from(["u1", "prefs", "*"]), min_size=1, max_size=2).map(tuple)),
              st.one_of(st.none(), st.integers(1, 3))),
)


def _items(items: list[Any]) -> set[tuple[Any, ...]]:
    return {(i.namespace, i.key, repr(sorted(i.value.items()))) for i in items}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, min_size=1, max_size=25))
def test_random_operations_match_langgraphs_in_memory_store(mem_url: str, ops: list[tuple[Any, ...]]) -> None:
    tenant = f"d{abs(hash(repr(ops))) % 10**9}"
    peer = InMemoryStore(index=INDEX)  # type: ignore[arg-type]
    with SutramStore.from_url(mem_url, tenant=tenant, index=INDEX) as ours:  # type: ignore[arg-type]
        for op in ops:
            stores: list[BaseStore] = [ours, peer]
            if op[0] == "put":
                for s in stores:
                    s.put(op[1], op[2], op[3])
            elif op[0] == "delete":
                for s in stores:
                    s.delete(op[1], op[2])
            elif op[0] == "get":
                got = [s.get(op[1], op[2]) for s in stores]
                assert [g.value if g else None for g in got] == [got[1].value if got[1] else None] * 2
            elif op[0] == "search":
                found = [s.search(op[1], query=op[2], filter=op[3], limit=100) for s in stores]
                assert _items(found[0]) == _items(found[1]), op
            else:
                _, prefix, suffix, depth = op
                # InMemoryStore lists a namespace that merely was read, or whose last item was
                # deleted (its namespaces live in a defaultdict); PostgresStore and Sutram list
                # only namespaces that hold items.
                for ns in [ns for ns, items in peer._data.items() if not items]:
                    del peer._data[ns]
                listed = [s.list_namespaces(prefix=prefix, suffix=suffix, max_depth=depth) for s in stores]
                assert listed[0] == listed[1], op
                paged = [s.list_namespaces(prefix=prefix, suffix=suffix, max_depth=depth, limit=2, offset=1)
                         for s in stores]
                assert paged[0] == paged[1]


# -- behaviour ------------------------------------------------------------------------------------


def test_semantic_search_works_out_of_the_box_with_the_default_embedder(tmp_path: Any) -> None:
    with SutramStore.from_url(f"sqlite:///{tmp_path / 'default.db'}") as s:
        s.put(("users", "u1"), "drink", {"text": "Prefers green tea in the morning"})
        s.put(("users", "u1"), "city", {"text": "Lives in Lisbon, Portugal"})
        s.put(("users", "u1"), "job", {"text": "Works as a nurse at the hospital"})
        hits = s.search(("users",), query="what beverage does the user like?", limit=3)
        assert hits[0].key == "drink" and hits[0].score is not None


def test_index_false_keeps_keyword_search(mem_url: str) -> None:
    with SutramStore.from_url(mem_url, index=False) as s:
        s.put(("docs",), "a", {"text": "quarterly invoice summary"})
        s.put(("docs",), "b", {"text": "holiday photos"})
        assert [h.key for h in s.search(("docs",), query="invoice")][:1] == ["a"]


def test_per_put_index_fields_and_unindexed_items(store: SutramStore) -> None:
    store.put(("d",), "a", {"title": "green tea", "text": "unrelated"}, index=["title"])
    store.put(("d",), "b", {"text": "green tea"}, index=False)
    hits = store.search(("d",), query="green tea", limit=1)
    assert hits[0].key == "a"
    assert {h.key for h in store.search(("d",), query="green tea", limit=10)} == {"a", "b"}  # b fills, unscored


def test_put_get_update_keeps_created_at(store: SutramStore) -> None:
    store.put(("n",), "k", {"text": "one"})
    first = store.get(("n",), "k")
    time.sleep(0.002)
    store.put(("n",), "k", {"text": "two"})
    second = store.get(("n",), "k")
    assert first is not None and second is not None
    assert second.value == {"text": "two"} and second.created_at == first.created_at
    assert second.updated_at > first.updated_at


def test_ttl_expires_refreshes_on_read_and_sweeps(mem_url: str) -> None:
    with SutramStore.from_url(mem_url, index=INDEX, ttl={"default_ttl": 1 / 60}) as s:  # type: ignore[arg-type]
        assert s.supports_ttl
        s.put(("warm",), "up", {"text": "first write creates the vector column"}, ttl=10)
        s.put(("t",), "a", {"text": "a"})
        s.put(("t",), "b", {"text": "b"}, ttl=10)
        time.sleep(0.6)
        assert s.get(("t",), "a") is not None  # refresh_on_read defaults to True
        time.sleep(0.6)
        assert s.get(("t",), "a", refresh_ttl=False) is not None
        time.sleep(0.6)
        assert s.get(("t",), "a") is None and s.get(("t",), "b") is not None
        assert s.sweep_ttl() == 1
        thread = s.start_ttl_sweeper(0.001)
        assert thread.is_alive() and s.stop_ttl_sweeper(timeout=5)


def test_the_store_reaches_graph_nodes_and_survives_a_new_process_object(mem_url: str, sql_url: str) -> None:
    class State(TypedDict):
        user: str
        answer: str

    def remember(state: State, *, store: BaseStore) -> dict[str, Any]:
        store.put(("users", state["user"]), "pref", {"text": "likes green tea"})
        return {}

    def recall(state: State, *, store: BaseStore) -> dict[str, Any]:
        hits = store.search(("users", state["user"]), query="tea")
        return {"answer": hits[0].value["text"] if hits else "nothing"}

    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    with SutramSaver.from_url(sql_url) as saver, SutramStore.from_url(mem_url, index=INDEX) as s:  # type: ignore[arg-type]
        out = builder.compile(checkpointer=saver, store=s).invoke(
            {"user": "u7", "answer": ""}, {"configurable": {"thread_id": "t"}})
        assert out["answer"] == "likes green tea"
    with SutramStore.from_url(mem_url, index=INDEX) as again:  # type: ignore[arg-type]
        assert again.get(("users", "u7"), "pref") is not None


async def test_async_batch_matches_sync(mem_url: str) -> None:
    async with SutramStore.from_url(mem_url, index=INDEX) as s:  # type: ignore[arg-type]
        await s.aput(("a", "b"), "k", {"text": "async green tea"})
        await s.aput(("a", "c"), "k", {"text": "coffee"})
        got = await s.aget(("a", "b"), "k")
        hits = await s.asearch(("a",), query="green tea", limit=1)
        names = await s.alist_namespaces(prefix=("a",))
        assert got is not None and hits[0].namespace == ("a", "b") and names == [("a", "b"), ("a", "c")]
        await s.adelete(("a", "b"), "k")
        assert await s.aget(("a", "b"), "k") is None


def test_tenants_do_not_see_each_other(mem_url: str) -> None:
    with SutramStore.from_url(mem_url, tenant="acme", index=INDEX) as acme:  # type: ignore[arg-type]
        globex = acme.for_tenant("globex")
        acme.put(("users",), "k", {"text": "acme secret"})
        assert globex.get(("users",), "k") is None
        assert globex.search(("users",), query="secret") == []
        assert globex.list_namespaces() == []


def test_invalid_namespaces_are_refused_before_any_write(store: SutramStore) -> None:
    from langgraph.store.base import InvalidNamespaceError, PutOp

    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp(("ok",), "k", {"text": "x"}), PutOp(("bad.label",), "k", {"text": "x"})])
    assert store.list_namespaces() == []


def test_memory_reads_and_writes_appear_in_the_trace_under_their_node(mem_url: str, sql_url: str) -> None:
    from langchain_core.messages import HumanMessage

    from sutram_adapters.langchain import SutramCallbackHandler
    from sutram_core.traces import open_trace_store

    class Chat(TypedDict):
        messages: list[Any]

    def remember(state: Chat, *, store: BaseStore) -> dict[str, Any]:
        store.put(("users", "u1"), "pref", {"text": "likes green tea"})
        return {}

    def recall(state: Chat, *, store: BaseStore) -> dict[str, Any]:
        store.search(("users",), query="tea")
        store.get(("users", "u1"), "pref")
        return {}

    builder = StateGraph(Chat)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    handler = SutramCallbackHandler(url=sql_url, tenant="acme")
    with SutramStore.from_url(mem_url, tenant="acme", index=INDEX) as s:  # type: ignore[arg-type]
        builder.compile(store=s).invoke({"messages": [HumanMessage("hi")]}, {"callbacks": [handler]})
        s.put(("users", "u1"), "untraced", {"text": "outside any run"})  # no span, no error
    handler.flush()
    with open_trace_store(sql_url) as traces:
        (run,) = traces.runs("acme")
        spans = traces.run_spans("acme", run.run_id)
    by_id = {sp.span_id: sp for sp in spans}
    memory = [(by_id[sp.parent_id].name, sp.name, sp.operation) for sp in spans if sp.kind == "memory"]
    assert memory == [("remember", "memory put", "update_memory"), ("recall", "memory search", "search_memory"),
                      ("recall", "memory get", "search_memory")]
    search = next(sp for sp in spans if sp.name == "memory search")
    assert "users/u1:pref" in (search.outputs or "") and "tea" in (search.inputs or "")
