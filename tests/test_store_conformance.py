"""LangGraph's documented ``BaseStore`` behaviour, checked on every store: LangGraph's own
``InMemoryStore`` (the reference) and ``SutramStore`` on SQLite, PostgreSQL and Weaviate.

Each test states one behaviour from LangGraph's ``BaseStore`` documentation and runs it on
each store, sync and async. Where Sutram deliberately differs (README, "SutramStore and
LangGraph's stores"), the test says so and checks Sutram's documented behaviour instead.
Scores are compared by order only (higher means more relevant), never by value, except
that a store's scores must not rise down the list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from sutram_adapters.langgraph import SutramStore
from tests.memory_support import MEMORY_BACKENDS, WordHashEmbedder, memory_url

DIMS = WordHashEmbedder.dims


def _embed(texts: list[str]) -> list[list[float]]:
    return WordHashEmbedder()(texts)


def index(fields: list[str] | None = None) -> dict[str, Any]:
    return {"dims": DIMS, "embed": _embed, **({"fields": fields} if fields else {})}


STORES = ["reference", *MEMORY_BACKENDS]


@pytest.fixture(params=STORES)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(kind: str, tmp_path: Path) -> Iterator[Any]:
    """A factory: ``open_store(index=...)`` gives a fresh store of this kind."""
    opened: list[Any] = []
    urls = memory_url(kind, tmp_path) if kind != "reference" else None
    url = next(urls) if urls is not None else None

    def factory(**kwargs: Any) -> BaseStore:
        if kind == "reference":
            return InMemoryStore(**kwargs)
        store = SutramStore.from_url(url, tenant=f"t{len(opened)}", **kwargs)
        opened.append(store)
        return store

    yield factory
    for s in opened:
        s.close()
    if urls is not None:
        for _ in urls:
            pass


@pytest.fixture
def store(open_store: Any) -> BaseStore:
    return open_store(index=index(["text"]))  # type: ignore[no-any-return]


def _keys(items: list[Any]) -> list[str]:
    return [i.key for i in items]


def _scores_fall(items: list[Any]) -> bool:
    scores = [i.score for i in items if i.score is not None]
    return all(a >= b for a, b in pairwise(scores))


# -- put / get / delete ------------------------------------------------------------------------


def test_put_then_get_returns_the_item(store: BaseStore) -> None:
    store.put(("users", "u1"), "prefs", {"text": "green tea", "n": 1})
    item = store.get(("users", "u1"), "prefs")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (("users", "u1"), "prefs", {"text": "green tea", "n": 1})
    assert isinstance(item.created_at, datetime) and isinstance(item.updated_at, datetime)


def test_get_of_a_missing_key_is_none(store: BaseStore) -> None:
    assert store.get(("users",), "nobody") is None


def test_put_replaces_the_value_keeps_created_at_and_moves_updated_at(store: BaseStore, kind: str) -> None:
    store.put(("a",), "k", {"text": "one"})
    first = store.get(("a",), "k")
    store.put(("a",), "k", {"text": "two"})
    second = store.get(("a",), "k")
    assert first is not None and second is not None
    assert second.value == {"text": "two"} and second.updated_at >= first.updated_at
    # InMemoryStore makes a new item on every put (created_at moves too); LangGraph's
    # PostgresStore and SqliteStore keep created_at (ON CONFLICT ... DO UPDATE), as Sutram does
    assert (second.created_at == first.created_at) is (kind != "reference")


def test_delete_removes_the_item_and_deleting_a_missing_key_is_fine(store: BaseStore) -> None:
    store.put(("a",), "k", {"text": "one"})
    store.delete(("a",), "k")
    store.delete(("a",), "never")
    assert store.get(("a",), "k") is None
    assert store.search(("a",)) == []


def test_a_put_op_with_value_none_deletes(store: BaseStore) -> None:
    store.put(("a",), "k", {"text": "one"})
    store.batch([PutOp(("a",), "k", None)])
    assert store.get(("a",), "k") is None


# -- batch ---------------------------------------------------------------------------------


def test_batch_results_follow_the_order_of_the_ops(store: BaseStore) -> None:
    store.put(("a",), "x", {"text": "x"})
    store.put(("b",), "y", {"text": "y"})
    results = store.batch([GetOp(("b",), "y"), ListNamespacesOp(limit=10), GetOp(("a",), "x"),
                           PutOp(("c",), "z", {"text": "z"}), SearchOp(("a",))])
    assert results[0] is not None and results[0].key == "y"
    assert results[1] == [("a",), ("b",)]
    assert results[2] is not None and results[2].key == "x"
    assert results[3] is None
    assert _keys(results[4]) == ["x"]


def test_reads_in_a_batch_see_the_state_before_its_puts(store: BaseStore) -> None:
    store.put(("a",), "k", {"text": "old"})
    got, _, after = store.batch([GetOp(("a",), "k"), PutOp(("a",), "k", {"text": "new"}), GetOp(("a",), "k")])
    assert got is not None and got.value == {"text": "old"}
    assert after is not None and after.value == {"text": "old"}
    item = store.get(("a",), "k")
    assert item is not None and item.value == {"text": "new"}


def test_the_last_put_of_a_key_in_a_batch_wins(store: BaseStore) -> None:
    store.batch([PutOp(("a",), "k", {"text": "1"}), PutOp(("a",), "k", {"text": "2"}), PutOp(("a",), "k", None),
                 PutOp(("a",), "k", {"text": "3"})])
    item = store.get(("a",), "k")
    assert item is not None and item.value == {"text": "3"}


# -- search without a query -----------------------------------------------------------------


def test_search_lists_the_items_under_a_namespace_prefix(store: BaseStore) -> None:
    store.put(("docs", "a"), "1", {"text": "x"})
    store.put(("docs", "b"), "2", {"text": "y"})
    store.put(("other",), "3", {"text": "z"})
    assert sorted(_keys(store.search(("docs",)))) == ["1", "2"]
    assert sorted(_keys(store.search(()))) == ["1", "2", "3"]
    assert all(i.score is None for i in store.search(("docs",)))


def test_search_pages_with_limit_and_offset(store: BaseStore) -> None:
    for i in range(5):
        store.put(("p",), f"k{i}", {"text": f"item {i}"})
    first = _keys(store.search(("p",), limit=2))
    second = _keys(store.search(("p",), limit=2, offset=2))
    rest = _keys(store.search(("p",), limit=10, offset=4))
    assert len(first) == 2 and len(second) == 2 and len(rest) == 1
    assert len(set(first + second + rest)) == 5


FILTER_DOCS = {
    "a": {"text": "x", "color": "red", "n": 1, "tags": ["draft"], "meta": {"lang": "en"}, "first name": "Ann"},
    "b": {"text": "y", "color": "blue", "n": 5, "tags": ["draft", "q3"], "meta": {"lang": "fr"}},
    "c": {"text": "z", "color": "red", "n": 9, "tags": [], "meta": {"lang": "en"}},
}
FILTERS = [
    ({"color": "red"}, ["a", "c"]),
    ({"color": "red", "n": 9}, ["c"]),
    ({"n": {"$gt": 1}}, ["b", "c"]),
    ({"n": {"$gte": 1, "$lt": 9}}, ["a", "b"]),
    ({"n": {"$lte": 5}}, ["a", "b"]),
    ({"color": {"$ne": "red"}}, ["b"]),
    ({"color": {"$eq": "blue"}}, ["b"]),
    ({"tags": ["draft"]}, ["a"]),
    ({"tags": []}, ["c"]),
    ({"meta": {"lang": "en"}}, ["a", "c"]),
    ({"first name": "Ann"}, ["a"]),
]


@pytest.mark.parametrize(("spec", "expected"), FILTERS, ids=[repr(f[0]) for f in FILTERS])
def test_filters_select_by_value(store: BaseStore, kind: str, spec: dict[str, Any], expected: list[str]) -> None:
    for key, value in FILTER_DOCS.items():
        store.put(("f",), key, value)
    assert sorted(_keys(store.search(("f",), filter=spec))) == expected


# -- search with a query --------------------------------------------------------------------


def test_query_search_ranks_the_most_similar_first_with_falling_scores(store: BaseStore) -> None:
    store.put(("d",), "tea", {"text": "green tea with lemon"})
    store.put(("d",), "coffee", {"text": "black coffee"})
    store.put(("d",), "bike", {"text": "a red bike"})
    hits = store.search(("d",), query="green tea")
    assert _keys(hits)[0] == "tea"
    assert all(h.score is not None for h in hits[:1]) and _scores_fall(hits)


def test_query_search_fills_up_with_unembedded_items_without_a_score(open_store: Any) -> None:
    store = open_store(index=index(["text"]))
    store.put(("d",), "tea", {"text": "green tea"})
    store.put(("d",), "raw", {"text": "green tea"}, index=False)
    hits = store.search(("d",), query="green tea", limit=5)
    assert _keys(hits) == ["tea", "raw"]
    assert hits[0].score is not None and hits[1].score is None


def test_a_document_scores_by_its_best_index_field(open_store: Any) -> None:
    store = open_store(index=index(["title", "tags[*]"]))
    # both hold "green" and "tea" once (keyword evidence alike); only "exact" has a field
    # that is the query itself
    store.put(("d",), "exact", {"title": "green tea", "tags": ["drink", "leaf"]})
    store.put(("d",), "merged", {"title": "green leaf", "tags": ["tea time", "drink"]})
    hits = store.search(("d",), query="green tea")
    assert _keys(hits)[0] == "exact" and _scores_fall(hits)


def test_each_element_of_a_list_field_is_embedded_on_its_own(open_store: Any) -> None:
    store = open_store(index=index(["tags[*]"]))
    store.put(("d",), "one", {"tags": ["bike", "green tea", "cake"]})
    store.put(("d",), "two", {"tags": ["green bike tea cake", "red"]})
    assert _keys(store.search(("d",), query="green tea"))[0] == "one"


def test_a_per_put_index_overrides_the_configured_fields(open_store: Any) -> None:
    store = open_store(index=index(["title"]))
    store.put(("d",), "by-title", {"title": "green tea", "body": "bike"})
    store.put(("d",), "by-body", {"title": "bike", "body": "green tea"}, index=["body"])
    hits = store.search(("d",), query="green tea")
    assert sorted(_keys(hits[:2])) == ["by-body", "by-title"]
    assert hits[0].score is not None and hits[1].score is not None


def test_dollar_embeds_the_whole_value(open_store: Any) -> None:
    store = open_store(index=index(["$"]))
    store.put(("d",), "tea", {"a": "green", "b": "tea"})
    store.put(("d",), "bike", {"a": "red", "b": "bike"})
    assert _keys(store.search(("d",), query="green tea"))[0] == "tea"


CONCEPTS = {"car": 0, "automobile": 0, "vehicle": 0, "tea": 1, "chai": 1, "bicycle": 2, "bike": 2}


def _concept_embed(texts: list[str]) -> list[list[float]]:
    # words of one concept share a direction: similar meanings, no shared word
    out = []
    for t in texts:
        v = [0.0] * 8
        for w in t.lower().split():
            v[CONCEPTS.get(w, 3 + len(w) % 5)] += 1.0
        v[7] += 0.1
        out.append(v)
    return out


def test_a_vector_only_match_scores_its_cosine_similarity(open_store: Any) -> None:
    store = open_store(index={"dims": 8, "embed": _concept_embed, "fields": ["text"]})
    store.put(("d",), "a", {"text": "car"})
    store.put(("d",), "b", {"text": "chai"})
    store.put(("d",), "c", {"text": "bicycle vehicle"})
    hits = store.search(("d",), query="automobile")  # no memory holds the word
    ref = InMemoryStore(index={"dims": 8, "embed": _concept_embed, "fields": ["text"]})  # type: ignore[typeddict-item]
    for key in "abc":
        ref.put(("d",), key, store.get(("d",), key).value)  # type: ignore[union-attr]
    expected = {h.key: h.score for h in ref.search(("d",), query="automobile")}
    assert {h.key: pytest.approx(h.score, abs=1e-4) for h in hits} == expected


# -- list_namespaces ---------------------------------------------------------------------------


@pytest.fixture
def namespaces(store: BaseStore) -> BaseStore:
    for ns in [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("e", "b"), ("f",)]:
        store.put(ns, "k", {"text": "v"})
    return store


def test_list_namespaces_is_sorted(namespaces: BaseStore) -> None:
    assert namespaces.list_namespaces() == [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("e", "b"), ("f",)]


def test_list_namespaces_by_prefix_suffix_and_wildcard(namespaces: BaseStore) -> None:
    assert namespaces.list_namespaces(prefix=("a", "b")) == [("a", "b", "c"), ("a", "b", "d")]
    assert namespaces.list_namespaces(suffix=("b",)) == [("e", "b")]
    assert namespaces.list_namespaces(prefix=("*", "b")) == [("a", "b", "c"), ("a", "b", "d"), ("e", "b")]
    assert namespaces.list_namespaces(prefix=("a",), suffix=("d",)) == [("a", "b", "d")]


def test_list_namespaces_truncates_to_max_depth_and_pages(namespaces: BaseStore) -> None:
    assert namespaces.list_namespaces(max_depth=1) == [("a",), ("e",), ("f",)]
    assert namespaces.list_namespaces(max_depth=2, limit=2, offset=1) == [("a", "x"), ("e", "b")]
    op = ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("a",)),), max_depth=2)
    assert namespaces.batch([op])[0] == [("a", "b"), ("a", "x")]


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("ns", [(), ("a.b",), ("langgraph", "x"), ("a", "")])
def test_invalid_namespaces_are_refused_with_a_value_error(store: BaseStore, ns: tuple[str, ...]) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(ns, "k", {"text": "v"})
    with pytest.raises(ValueError):
        store.put(ns, "k", {"text": "v"})


# -- TTL -----------------------------------------------------------------------------------


def test_ttl_is_supported_where_the_store_says_so(open_store: Any, kind: str) -> None:
    store = open_store(index=index(["text"]))
    if not store.supports_ttl:
        assert kind == "reference"  # InMemoryStore has no TTL: LangGraph refuses a ttl there
        with pytest.raises(NotImplementedError):
            store.put(("t",), "k", {"text": "v"}, ttl=1)
        return
    store.put(("t",), "k", {"text": "v"}, ttl=2 / 60)  # two seconds, in minutes
    store.put(("t",), "keep", {"text": "v"})
    assert store.get(("t",), "k", refresh_ttl=False) is not None
    import time

    time.sleep(2.5)
    assert store.get(("t",), "k") is None
    assert _keys(store.search(("t",))) == ["keep"]


# -- async ---------------------------------------------------------------------------------


def test_async_methods_behave_as_the_sync_ones(store: BaseStore) -> None:
    async def main() -> None:
        await store.aput(("a", "b"), "k", {"text": "green tea"})
        await store.aput(("a", "c"), "j", {"text": "bike"})
        item = await store.aget(("a", "b"), "k")
        assert item is not None and item.value == {"text": "green tea"}
        hits = await store.asearch(("a",), query="green tea")
        assert _keys(hits)[0] == "k" and _scores_fall(hits)
        assert sorted(_keys(await store.asearch(("a",), filter={"text": "bike"}))) == ["j"]
        assert await store.alist_namespaces(prefix=("a",)) == [("a", "b"), ("a", "c")]
        results = await store.abatch([GetOp(("a", "c"), "j"), PutOp(("a", "c"), "j", None), GetOp(("a", "c"), "j")])
        assert results[0] is not None and results[2] is not None
        await store.adelete(("a", "b"), "k")
        assert await store.aget(("a", "b"), "k") is None and await store.aget(("a", "c"), "j") is None

    asyncio.run(main())
