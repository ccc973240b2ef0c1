"""Bad memory input gets a typed error naming what is wrong, and large input the right answer.

Every test runs on SQLite and PostgreSQL (the ``backend``/``db_url`` fixtures).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sutram_adapters.langgraph import SutramStore
from sutram_core.errors import InvalidMemoryError
from sutram_core.memory import MemoryStore, Write, matches, parse_filter
from tests.memory_support import open_memory

NS = ("users", "u1")


@pytest.fixture
def store(backend: str, db_url: str) -> Iterator[MemoryStore]:
    # no vectors: these tests are about input, and keyword search covers every query path
    with open_memory(backend, db_url, tenant="acme", embedder=False) as s:
        yield s


def _stored(store: MemoryStore) -> int:
    return store.count(())


# -- non-finite numbers are refused, never stored as null ---------------------------------------

NON_FINITE = [
    pytest.param({"value": {"score": math.nan}}, "value.score", id="nan-in-value"),
    pytest.param({"value": {"a": {"b": [1.0, math.inf]}}}, "value.a.b[1]", id="inf-nested-in-a-list"),
    pytest.param({"metadata": {"w": {"low": -math.inf}}}, "metadata.w.low", id="minus-inf-in-metadata"),
    pytest.param({"value": {"n": 2**70}}, "value.n", id="integer-beyond-64-bits"),
]


@pytest.mark.parametrize(("fields", "where"), NON_FINITE)
def test_put_refuses_a_non_finite_number_naming_the_field(store: MemoryStore, fields: dict[str, Any],
                                                           where: str) -> None:
    with pytest.raises(InvalidMemoryError, match=rf"^{re.escape(where)} is "):
        store.put(NS, "k", fields.get("value", {"text": "tea"}), metadata=fields.get("metadata"))
    assert store.get(NS, "k") is None and _stored(store) == 0


@pytest.mark.parametrize(("fields", "where"), NON_FINITE)
def test_add_and_put_many_refuse_non_finite_numbers(store: MemoryStore, fields: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidMemoryError, match=re.escape(where)):
        store.add(NS, "green tea", value=fields.get("value"), metadata=fields.get("metadata"))
    good = store.make_record(NS, "ok", {"text": "fine"}, None, "semantic", None, None, None, None)
    bad = store.make_record(NS, "bad", {"text": "fine"}, None, "semantic", None, None, None, None)
    bad.value.update(fields.get("value", {}))  # changed after validation: the write checks again
    bad.metadata.update(fields.get("metadata", {}))
    with pytest.raises(InvalidMemoryError, match="is "):
        store.put_many([good, bad])
    with pytest.raises(InvalidMemoryError, match="is "):
        store.apply([Write("put", NS, "bad", bad)])
    assert _stored(store) == 0


def test_set_metadata_refuses_nan_and_keeps_the_old_metadata(store: MemoryStore) -> None:
    store.put(NS, "k", {"text": "tea"}, metadata={"w": 1})
    with pytest.raises(InvalidMemoryError, match=r"metadata\.w is nan"):
        store.set_metadata([(NS, "k")], {"w": math.nan})
    rec = store.get(NS, "k")
    assert rec is not None and rec.metadata == {"w": 1}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_langgraph_put_refuses_non_finite_values(db_url: str, bad: float) -> None:
    with SutramStore.from_url(db_url, tenant="acme", index=False) as lg:
        with pytest.raises(InvalidMemoryError, match=r"value\.scores\[0\] is"):
            lg.put(NS, "k", {"scores": [bad]})
        with pytest.raises(InvalidMemoryError, match=r"value\.deep\.x is"):
            lg.batch([_put("ok", {"fine": 1}), _put("k", {"deep": {"x": bad}})])
        assert lg.get(NS, "k") is None and lg.get(NS, "ok") is None  # nothing of the batch written


def _put(key: str, value: dict[str, Any], ttl: float | None = None) -> Any:
    from langgraph.store.base import PutOp

    return PutOp(NS, key, value, ttl=ttl)


# -- out-of-range numbers: a typed error with the allowed range, up front -----------------------

@pytest.mark.parametrize("ttl", [math.nan, math.inf, 1e300, -1.0, 0, True, "60"])
def test_a_ttl_out_of_range_is_refused_with_the_range(store: MemoryStore, ttl: Any) -> None:
    with pytest.raises(InvalidMemoryError, match=r"ttl_seconds is a number greater than 0 and at most 3153600000"):
        store.put(NS, "k", {"text": "tea"}, ttl_seconds=ttl)
    with pytest.raises(InvalidMemoryError, match="ttl_seconds"):
        store.add(NS, "tea", ttl_seconds=ttl)
    assert _stored(store) == 0


@pytest.mark.parametrize("ttl", [math.nan, math.inf, 1e300])
def test_langgraph_ttl_out_of_range_is_refused_in_minutes(db_url: str, ttl: float) -> None:
    with SutramStore.from_url(db_url, tenant="acme", index=False) as lg:
        with pytest.raises(InvalidMemoryError, match=r"ttl \(minutes\) is a number greater than 0 and at most 52560000"):
            lg.put(NS, "k", {"a": 1}, ttl=ttl)
        assert lg.get(NS, "k") is None


@pytest.mark.parametrize("spec", [
    {"n": {"$gt": 2**70}}, {"n": 2**70}, {"n": {"$in": [1, -(2**70)]}}, {"n": {"$ne": 2**64}},
    {"n": {"$lt": math.nan}}, {"n": math.inf},
])
def test_a_filter_operand_out_of_range_is_refused_with_the_range(store: MemoryStore, spec: dict[str, Any]) -> None:
    store.put(NS, "k", {"text": "tea", "n": 1})
    with pytest.raises(InvalidMemoryError, match=r"at 'n' is .*(-2\*\*63 to 2\*\*63 - 1|must be finite)"):
        store.search(filter=spec)
    with pytest.raises(InvalidMemoryError, match="at 'n'"):
        store.search("tea", metadata=spec)
    with pytest.raises(InvalidMemoryError, match="at 'n'"):
        store.count(filter=spec)


def test_the_largest_64_bit_integers_still_filter(store: MemoryStore) -> None:
    store.put(NS, "big", {"n": 2**63 - 1})
    store.put(NS, "small", {"n": -(2**63)})
    assert [h.record.key for h in store.search(filter={"n": 2**63 - 1})] == ["big"]
    assert [h.record.key for h in store.search(filter={"n": {"$in": [-(2**63), 5]}})] == ["small"]


@pytest.mark.parametrize("page", [{"limit": 2**63}, {"offset": 2**63}, {"limit": -1}, {"offset": 2**31},
                                  {"limit": True}, {"limit": 1.5}])
def test_limit_and_offset_out_of_range_are_refused_with_the_range(store: MemoryStore, page: dict[str, Any]) -> None:
    store.put(NS, "k", {"text": "tea"})
    name = next(iter(page))
    with pytest.raises(InvalidMemoryError, match=rf"{name} is an integer from 0 to 2147483647"):
        store.search("tea", **page)
    with pytest.raises(InvalidMemoryError, match=rf"{name} is an integer from 0 to 2147483647"):
        store.list(NS, **page)
    with pytest.raises(InvalidMemoryError, match=rf"{name} is an integer from 0 to 2147483647"):
        store.list_namespaces(**page)


def test_langgraph_search_with_a_huge_limit_is_a_typed_error(db_url: str) -> None:
    with SutramStore.from_url(db_url, tenant="acme", index=False) as lg:
        lg.put(NS, "k", {"a": 1})
        with pytest.raises(InvalidMemoryError, match="limit is an integer from 0 to 2147483647"):
            lg.search(NS, limit=2**63)
        with pytest.raises(InvalidMemoryError, match="offset is an integer from 0 to 2147483647"):
            lg.search(NS, offset=2**63)


@pytest.mark.parametrize("moment", [1e300, math.nan, -1e20])
def test_times_out_of_range_are_refused_with_the_range(store: MemoryStore, moment: float) -> None:
    with pytest.raises(InvalidMemoryError, match="epoch seconds from -62135596800 to 253402300799"):
        store.search(created_after=moment)
    with pytest.raises(InvalidMemoryError, match="epoch seconds from"):
        store.put(NS, "k", {"a": 1}, valid_from=moment)
    assert _stored(store) == 0


# -- $in of any size PostgreSQL takes, with the reference semantics -----------------------------

VALUES: list[dict[str, Any]] = [
    {"v": 1}, {"v": 1.0}, {"v": 2.5}, {"v": -7}, {"v": 2**63 - 1}, {"v": "1"}, {"v": "a"}, {"v": "é"},
    {"v": ""}, {"v": True}, {"v": False}, {"v": None}, {"v": [1, 2]}, {"v": {"0": 1}}, {"v": {"w": "a"}},
    {"other": 1}, {"v": 0}, {"v": "true"}, {"v": "null"}, {"v": 1e300},
]


@pytest.mark.parametrize("size", [1_000, 40_000])
def test_in_filter_of_any_size_agrees_with_the_reference(store: MemoryStore, size: int) -> None:
    for i, value in enumerate(VALUES):
        store.put(NS, f"k{i:02d}", value, metadata=value)
    rng = random.Random(size)
    wanted = [1, "a", None, False, 2**63 - 1, "é", 1e300, "w"]
    # padding of every JSON scalar type that matches nothing, then the interesting items shuffled in
    padding: list[Any] = [f"pad{i}" if i % 3 else 10_000 + i + (0.5 if i % 2 else 0) for i in range(size - len(wanted))]
    for items in (wanted + padding, [*padding, True], [*padding, "1", 0, "null"]):
        rng.shuffle(items)
        assert len(items) >= size - len(wanted)
        for column in ("filter", "metadata"):
            spec = {"v": {"$in": items}}
            conditions = parse_filter(spec, "value" if column == "filter" else "metadata")
            expected = sorted(f"k{i:02d}" for i, v in enumerate(VALUES) if matches(conditions, v, v))
            got = sorted(r.key for r in store.list(NS, limit=100, **{column: spec}))
            assert got == expected, (column, got, expected)
    counted = parse_filter({"v": {"$in": wanted + padding}})
    assert store.count(NS, filter={"v": {"$in": wanted + padding}}) == sum(matches(counted, v, {}) for v in VALUES) == 8
    nested = sorted(r.key for r in store.list(NS, filter={"v": {"w": {"$in": [*padding, "a"]}}}))
    assert nested == ["k14"]


def test_in_filter_with_a_numeric_path_part_reads_object_keys_only(store: MemoryStore) -> None:
    store.put(NS, "list", {"v": [5, 6]})
    store.put(NS, "dict", {"v": {"0": 5}})
    for spec in ({"v.0": {"$in": [5]}}, {"v.0": {"$gte": 5}}):
        conditions = parse_filter(spec)
        expected = sorted(k for k, v in (("list", {"v": [5, 6]}), ("dict", {"v": {"0": 5}})) if matches(conditions, v, {}))
        assert sorted(r.key for r in store.list(NS, filter=spec)) == expected == ["dict"]


# -- a huge query cannot stall the store ----------------------------------------------------------

def _huge_query_finds_its_word(store: MemoryStore, modes: tuple[str, ...]) -> None:
    store.put(NS, "target", {"text": "notes on photosynthesis in ferns"})
    for i in range(20):
        store.put(NS, f"other{i}", {"text": f"ordinary memory number {i} about tea"})
    words = [f"w{i}x" for i in range(150_000)]
    words.insert(75_000, "photosynthesis")
    query = " ".join(words)
    assert len(query) > 1_000_000
    for mode in modes:
        started = time.monotonic()
        hits = store.search(query, namespace=NS, mode=mode, limit=25)
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"{mode} search of a 1 MB query took {elapsed:.1f} s"
        found = {h.record.key: h.keyword_score for h in hits}
        assert found.get("target"), f"the memory matching one word of the query was not found by {mode} search"


def test_a_one_megabyte_query_of_150k_distinct_words_returns_quickly_and_still_matches(store: MemoryStore) -> None:
    _huge_query_finds_its_word(store, ("keyword", "hybrid"))


def test_a_one_megabyte_hybrid_query_with_vectors_returns_quickly(tmp_path: Any) -> None:
    # SQLite only: the vector half is the in-process index; the bound under test is the keyword half
    with open_memory("sqlite", f"sqlite:///{tmp_path / 'v.db'}", tenant="acme") as vectors:
        _huge_query_finds_its_word(vectors, ("hybrid",))
