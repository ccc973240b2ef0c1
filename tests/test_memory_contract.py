"""The memory contract: one suite, run against SQLite, PostgreSQL and (when reachable) Weaviate.

Filters, namespaces and the write rules are checked against a reference model with
hypothesis; tenant isolation is a property over random operations on two tenants.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sutram_core.errors import EmbeddingError, InvalidMemoryError, TenantError
from sutram_core.memory import MemoryKind, MemoryStore, matches, parse_filter
from tests.memory_support import open_memory

SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def store(mem_backend: str, mem_url: str) -> Iterator[MemoryStore]:
    with open_memory(mem_backend, mem_url, tenant="acme") as s:
        yield s


# -- records ---------------------------------------------------------------------------------


def test_put_then_get_returns_every_field(store: MemoryStore) -> None:
    put = store.put(("users", "u1"), "tea", {"text": "Alice drinks green tea", "cups": 2}, kind="semantic",
                    metadata={"source": "chat"}, provenance={"run_id": "r1", "thread_id": "t1"}, ttl_seconds=3600)
    got = store.get(("users", "u1"), "tea")
    assert got is not None
    assert (got.namespace, got.key, got.value, got.text) == (("users", "u1"), "tea", put.value, "Alice drinks green tea")
    assert got.kind is MemoryKind.SEMANTIC and got.metadata == {"source": "chat"}
    assert got.provenance.run_id == "r1" and got.provenance.thread_id == "t1"
    assert got.id == put.id and got.tenant_id == "acme" and got.version == 1
    assert got.created_at is not None and got.expires_at is not None and got.valid_to is None
    assert store.get(("users", "u1"), "coffee") is None


def test_put_on_an_existing_key_replaces_it_and_keeps_its_creation_time(store: MemoryStore) -> None:
    first = store.put(("n",), "k", {"text": "one"})
    time.sleep(0.002)
    second = store.put(("n",), "k", {"text": "two"})
    got = store.get(("n",), "k")
    assert got is not None and got.value == {"text": "two"}
    assert got.id == first.id == second.id and got.created_at == first.created_at
    assert got.updated_at is not None and first.updated_at is not None and got.updated_at > first.updated_at
    assert len(store.history(("n",), "k")) == 1


def test_put_many_of_new_keys_then_again_with_old_ones_keeps_one_current_record_each(store: MemoryStore) -> None:
    # the bulk load path (Weaviate: one batch for keys with no record yet) and the per-write one
    def records(keys: range, word: str) -> list[Any]:
        return [store.make_record(("bulk", f"g{i % 3}"), f"k{i}", {"text": f"{word} {i}", "i": i}, None, "semantic",
                                  None, None, None, None) for i in keys]

    first = store.put_many(records(range(250), "first"))
    assert len(first) == 250 and len({r.id for r in first}) == 250
    again = store.put_many(records(range(240, 260), "again"))  # 10 known keys, 10 new ones
    for i in (0, 120, 249):
        got = store.get(("bulk", f"g{i % 3}"), f"k{i}")
        assert got is not None and got.value == {"text": f"{'again' if i >= 240 else 'first'} {i}", "i": i}
    known = store.get(("bulk", "g0"), "k240")
    assert known is not None and known.id == first[240].id == again[0].id  # replaced in place, same record
    assert store.count(("bulk",)) == 260 and len(store.history(("bulk", "g0"), "k240")) == 1
    assert [h.record.key for h in store.search(filter={"i": 255}, namespace=("bulk",))] == ["k255"]


def test_procedural_memory_keeps_every_version(store: MemoryStore) -> None:
    for n in range(3):
        store.put(("agent", "procedures"), "refund", {"text": f"step list v{n + 1}"}, kind="procedural")
    latest = store.get(("agent", "procedures"), "refund")
    history = store.history(("agent", "procedures"), "refund")
    assert latest is not None and latest.version == 3 and latest.value == {"text": "step list v3"}
    assert [h.version for h in history] == [1, 2, 3]
    assert [h.valid_to is None for h in history] == [False, False, True]
    assert history[1].supersedes == history[0].id


def test_superseded_fact_is_closed_and_still_readable_as_of_earlier(store: MemoryStore) -> None:
    store.put(("u",), "city", {"text": "Alice lives in Lisbon"})
    time.sleep(0.01)
    before = time.time()
    time.sleep(0.01)
    new = store.supersede((("u",), "city"), "Alice lives in Porto")
    assert store.get(("u",), "city") is None
    old = store.get(("u",), "city", as_of=before)
    assert old is not None and old.value["text"] == "Alice lives in Lisbon"
    assert new.supersedes == old.id
    assert [h.record.key for h in store.search("Alice lives", limit=5)] == [new.key]
    assert [h.record.key for h in store.search("Alice lives", as_of=before, limit=5)] == ["city"]
    with pytest.raises(InvalidMemoryError, match="nothing to supersede"):
        store.supersede((("u",), "city"), "again")


def test_delete_removes_every_version(store: MemoryStore) -> None:
    store.put(("p",), "k", {"text": "v1"}, kind="procedural")
    store.put(("p",), "k", {"text": "v2"}, kind="procedural")
    store.delete(("p",), "k")
    assert store.get(("p",), "k") is None and store.history(("p",), "k") == []
    assert store.search("v2") == []


def test_add_updates_a_near_duplicate_instead_of_adding(store: MemoryStore) -> None:
    first = store.add(("u", "1"), "Alice drinks green tea every morning")
    again = store.add(("u", "1"), "alice drinks green tea every morning!")
    other_ns = store.add(("u", "2"), "Alice drinks green tea every morning")
    different = store.add(("u", "1"), "Bob repairs old bicycles on Sundays")
    assert again.key == first.key and again.id == first.id
    assert other_ns.key != first.key and different.key != first.key
    assert len(store.list(("u", "1"))) == 2


# -- search ------------------------------------------------------------------------------------


def test_keyword_search_works_without_vectors(mem_backend: str, mem_url: str) -> None:
    with open_memory(mem_backend, mem_url, tenant="acme", embedder=False) as s:
        s.put(("d",), "a", {"text": "The invoice was paid in March"})
        s.put(("d",), "b", {"text": "The dog chased a ball"})
        hits = s.search("invoice paid")
        assert [h.record.key for h in hits] == ["a"]
        assert hits[0].keyword_score is not None and hits[0].vector_score is None


def test_hybrid_search_puts_the_matching_memory_first(store: MemoryStore) -> None:
    texts = {"a": "Alice drinks green tea", "b": "Bob drinks black coffee", "c": "Carol rides a red bicycle"}
    for key, text in texts.items():
        store.put(("u",), key, {"text": text})
    for mode in ("hybrid", "vector", "keyword"):
        hits = store.search("green tea", mode=mode, limit=3)
        assert hits and hits[0].record.key == "a", mode
        assert hits[0].score is not None
    assert [h.record.key for h in store.search("green tea", limit=1, offset=1)] != ["a"]


def test_search_by_kind_namespace_and_time(store: MemoryStore) -> None:
    store.put(("u", "1", "facts"), "f", {"text": "likes tea"}, kind="semantic")
    store.put(("u", "1", "log"), "e", {"text": "asked about tea"}, kind="episodic")
    mid = time.time()
    time.sleep(0.01)
    store.put(("u", "2"), "g", {"text": "likes tea too"}, kind="semantic")
    assert {h.record.key for h in store.search("tea", kind="episodic")} == {"e"}
    assert {h.record.key for h in store.search("tea", namespace=("u", "1"))} == {"f", "e"}
    assert {h.record.key for h in store.search("tea", created_after=mid)} == {"g"}
    assert {h.record.key for h in store.search(None, created_before=mid)} == {"f", "e"}
    assert {h.record.key for h in store.search("tea", kind=["semantic", "episodic"])} == {"f", "e", "g"}


def test_recency_weighting_prefers_the_newer_of_equal_matches(store: MemoryStore) -> None:
    store.put(("n",), "old", {"text": "meeting notes about the budget"})
    time.sleep(0.05)
    store.put(("n",), "new", {"text": "meeting notes about the budget"})
    hits = store.search("meeting notes about the budget", recency_half_life=0.01, limit=2)
    assert [h.record.key for h in hits] == ["new", "old"]


def test_expired_memories_are_hidden_swept_and_refreshed_on_read(store: MemoryStore) -> None:
    store.put(("t",), "short", {"text": "short lived note"}, ttl_seconds=0.2)
    store.put(("t",), "kept", {"text": "kept note"}, ttl_seconds=0.6)
    time.sleep(0.3)
    assert store.get(("t",), "short") is None
    assert store.get(("t",), "kept", refresh_ttl=True) is not None  # pushed to now + 0.6 s
    time.sleep(0.4)
    assert store.get(("t",), "kept") is not None
    assert store.sweep_expired() >= 1
    assert store.history(("t",), "short") == []
    assert [h.record.key for h in store.search("note")] == ["kept"]


async def test_async_twins_match_the_sync_calls(store: MemoryStore) -> None:
    await store.aput(("a",), "k", {"text": "async tea note"})
    rec = await store.aadd(("a",), "another async note about cake")
    got = await store.aget(("a",), "k")
    hits = await store.asearch("tea", namespace=("a",))
    assert got is not None and got.value == {"text": "async tea note"}
    assert hits[0].record.key == "k" and rec.key != "k"
    await store.adelete(("a",), "k")
    assert await store.aget(("a",), "k") is None
    results = await asyncio.gather(*(store.asearch("note") for _ in range(4)))
    assert all([h.record.key for h in r] == [rec.key] for r in results)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda s: s.put("users", "k", {}),
    lambda s: s.put(("a", ""), "k", {}),
    lambda s: s.put(("a",), "", {}),
    lambda s: s.put(("a",), "k", ["not", "a", "dict"]),
    lambda s: s.put(("a",), "k", {"bad": object()}),
    lambda s: s.put(("a",), "k", {}, kind="dream"),
    lambda s: s.put(("a",), "k", {}, ttl_seconds=-1),
    lambda s: s.search("x", filter={"n": {"$regex": "a"}}),
    lambda s: s.search("x", filter={"a..b": 1}),
    lambda s: s.search("x", filter={"a\x00b": 1}),
    lambda s: s.search("x", filter={"tags": [["nested"]]}),
    lambda s: s.search("x", filter={"n": {"$in": []}}),
    lambda s: s.search("x", limit=-1),
    lambda s: s.search("x", mode="fuzzy"),
])
def test_bad_input_is_a_typed_error_and_writes_nothing(store: MemoryStore, call: Any) -> None:
    with pytest.raises(InvalidMemoryError):
        call(store)
    assert store.list_namespaces() == []


def test_a_failing_embedder_writes_nothing(mem_backend: str, mem_url: str) -> None:
    def broken(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("provider down")

    with open_memory(mem_backend, mem_url, tenant="acme", embedder=broken) as s:
        with pytest.raises(EmbeddingError, match="provider down"):
            s.put_many([s.make_record(("a",), "k", {"text": "x"}, None, "semantic", None, None, None, None)])
        assert s.list_namespaces() == []


def test_a_store_bound_to_a_tenant_refuses_another(store: MemoryStore) -> None:
    with pytest.raises(TenantError):
        store.search("x", tenant="globex")


# -- properties --------------------------------------------------------------------------------

_scalars = st.one_of(st.integers(-5, 5), st.sampled_from(["red", "blue", "Red", ""]), st.booleans(), st.none(),
                     st.floats(-5, 5, allow_nan=False).map(lambda f: round(f, 2)))
_values = st.fixed_dictionaries({}, optional={
    "color": _scalars, "n": _scalars, "nested": st.fixed_dictionaries({}, optional={"n": _scalars, "tag": _scalars}),
})
_ops = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in"])
_ordered = st.one_of(st.integers(-5, 5), st.sampled_from(["blue", "red", "m"]))


@st.composite
def _filters(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in draw(st.lists(st.sampled_from(["color", "n", "nested.n", "nested.tag"]), max_size=2, unique=True)):
        op = draw(_ops)
        if op in ("$gt", "$gte", "$lt", "$lte"):
            operand: Any = draw(_ordered)
        elif op == "$in":
            operand = draw(st.lists(_scalars, min_size=1, max_size=3))
        else:
            operand = draw(_scalars)
        out[field] = operand if op == "$eq" and draw(st.booleans()) else {op: operand}
    return out


@SLOW
@given(values=st.lists(_values, min_size=1, max_size=12), spec=_filters())
def test_filters_agree_with_the_reference_semantics(mem_backend: str, mem_url: str, values: list[dict[str, Any]],
                                                     spec: dict[str, Any]) -> None:
    with open_memory(mem_backend, mem_url, tenant="acme") as s:
        ns = ("f", f"x{abs(hash(repr((values, spec)))) % 10**8}")
        s.put_many([s.make_record(ns, f"k{i}", {**v, "text": f"item {i}"}, None, "semantic", {"m": v.get("n")}, None,
                              None, None) for i, v in enumerate(values)])
        conditions = parse_filter(spec)
        expected = {f"k{i}" for i, v in enumerate(values) if matches(conditions, v, {})}
        found = {h.record.key for h in s.search(None, namespace=ns, filter=spec, limit=100)}
        assert found == expected
        meta_spec = {"m": spec[next(iter(spec))]} if spec else {}
        meta_expected = {f"k{i}" for i, v in enumerate(values)
                         if matches(parse_filter(meta_spec, "metadata"), {}, {"m": v.get("n")})}
        assert {h.record.key for h in s.search("item", namespace=ns, metadata=meta_spec, limit=100)} == meta_expected


_labels = st.sampled_from(["a", "b", "c", "users", "x-1"])
_namespaces = st.lists(_labels, min_size=1, max_size=3).map(tuple)


@SLOW
@given(namespaces=st.lists(_namespaces, min_size=1, max_size=8),
       prefix=st.lists(st.sampled_from(["a", "b", "*"]), max_size=2).map(tuple),
       suffix=st.lists(st.sampled_from(["a", "c", "*"]), max_size=2).map(tuple),
       depth=st.one_of(st.none(), st.integers(1, 3)))
def test_list_namespaces_agrees_with_the_reference(mem_backend: str, mem_url: str, namespaces: list[tuple[str, ...]],
                                                   prefix: tuple[str, ...], suffix: tuple[str, ...],
                                                   depth: int | None) -> None:
    from sutram_core.memory import NamespaceMatch

    tenant = f"ns{abs(hash(repr((namespaces, prefix, suffix, depth)))) % 10**9}"
    with open_memory(mem_backend, mem_url) as s:
        for ns in namespaces:
            s.put(ns, "k", {"text": "x"}, tenant=tenant)
        conds = [NamespaceMatch(k, p) for k, p in (("prefix", prefix), ("suffix", suffix)) if p]
        expected = sorted({ns[:depth] if depth else ns for ns in set(namespaces) if all(c.matches(ns) for c in conds)})
        got = s.list_namespaces(prefix=prefix or None, suffix=suffix or None, max_depth=depth, tenant=tenant)
        assert got == expected
        assert s.list_namespaces(prefix=prefix or None, suffix=suffix or None, max_depth=depth, limit=2, offset=1,
                                 tenant=tenant) == expected[1:3]


_tenant_ops = st.lists(st.tuples(st.sampled_from(["put", "add", "delete", "supersede"]), st.sampled_from(["A", "B"]),
                                 _namespaces, st.sampled_from(["k1", "k2", "k3"]),
                                 st.sampled_from(["tea", "coffee", "green tea", "secret plan"])),
                       min_size=1, max_size=15)


@SLOW
@given(ops=_tenant_ops)
def test_no_read_of_one_tenant_returns_another_tenants_record(mem_backend: str, mem_url: str,
                                                             ops: list[tuple[str, str, tuple[str, ...], str, str]]) -> None:
    run = f"{abs(hash(repr(ops))) % 10**9}"
    tenants = {"A": f"a{run}", "B": f"b{run}"}
    with open_memory(mem_backend, mem_url) as s:
        for op, who, ns, key, text in ops:
            t = tenants[who]
            if op == "put":
                s.put(ns, key, {"text": f"{who} {text}", "owner": who}, tenant=t)
            elif op == "add":
                s.add(ns, f"{who} {text}", value={"owner": who}, tenant=t)
            elif op == "delete":
                s.delete(ns, key, tenant=t)
            elif s.get(ns, key, tenant=t) is not None:
                s.supersede((ns, key), f"{who} now {text}", value={"owner": who}, tenant=t)
        for who, t in tenants.items():
            seen = [h.record for q in ("tea", "coffee", "secret plan", None) for mode in ("hybrid", "keyword", "vector")
                    for h in s.search(q, mode=mode, limit=50, tenant=t)]
            seen += [r for ns in s.list_namespaces(tenant=t) for r in s.list(ns, limit=50, tenant=t)]
            seen += [r for _, _, ns, key, _ in ops for r in [s.get(ns, key, tenant=t)] if r is not None]
            seen += [r for _, _, ns, key, _ in ops for r in s.history(ns, key, tenant=t)]
            assert all(r.tenant_id == t and r.value.get("owner") == who for r in seen)


def test_count_ordering_by_key_and_metadata_merge(store: MemoryStore) -> None:
    for key in ("b", "a", "c"):
        store.put(("chat", "s1"), key, {"text": f"message {key}"}, metadata={"status": "active"})
    assert [r.key for r in store.list(("chat", "s1"), order="key")] == ["a", "b", "c"]
    store.set_metadata([(("chat", "s1"), "a"), (("chat", "s1"), "b")], {"status": "archived"})
    assert store.count(("chat", "s1")) == 3
    assert store.count(("chat", "s1"), metadata={"status": "archived"}) == 2
    assert [h.record.key for h in store.search("message", metadata={"status": "active"})] == ["c"]
    got = store.get(("chat", "s1"), "a")
    assert got is not None and got.metadata == {"status": "archived"} and got.value == {"text": "message a"}


def test_sqlite_vector_index_follows_other_processes_and_is_bounded(tmp_path: Path) -> None:
    from tests.memory_support import WordHashEmbedder

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with MemoryStore.from_url(url, embedder=WordHashEmbedder()) as reader, \
            MemoryStore.from_url(url, embedder=WordHashEmbedder()) as writer:
        writer.put(("n",), "a", {"text": "green tea"}, tenant="t1")
        assert [h.record.key for h in reader.search("green tea", mode="vector", tenant="t1")] == ["a"]
        writer.put(("n",), "b", {"text": "green tea please"}, tenant="t1")  # another store's write
        writer.delete(("n",), "a", tenant="t1")
        assert [h.record.key for h in reader.search("green tea", mode="vector", tenant="t1")] == ["b"]
        backend = reader.backend
        backend.max_vector_indexes = 2  # type: ignore[attr-defined]
        for t in ("t2", "t3", "t4"):
            writer.put(("n",), "k", {"text": "tea"}, tenant=t)
            assert [h.record.key for h in reader.search("tea", mode="vector", tenant=t)] == ["k"]
        assert list(backend._indexes) == ["t3", "t4"]  # type: ignore[attr-defined]
        assert [h.record.key for h in reader.search("green tea", mode="vector", tenant="t1")] == ["b"]
