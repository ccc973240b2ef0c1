"""Filters as LangGraph's stores accept them: lists compared with lists, field names with any
characters (bound as parameters, so a hostile name or value cannot change the SQL), integers
beyond 64 bits refused with a typed error, and validation errors that are ``ValueError``s.

Each case is checked against :func:`sutram_core.memory.matches`, the reference semantics, and
against LangGraph's ``InMemoryStore`` where LangGraph defines the behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from sutram_adapters.langgraph import SutramStore
from sutram_core.errors import InvalidCheckpointError, InvalidMemoryError
from sutram_core.memory import MemoryStore, matches, parse_filter

DOCS: dict[str, dict[str, Any]] = {
    "a": {"tags": ["draft"], "first name": "Ann", "it's": 1, 'q"uote': {"in\\ner": "x"}, "n": 1},
    "b": {"tags": ["draft", "q3"], "first name": "Bob", "it's": 2, 'q"uote': {"in\\ner": "y"}, "n": 1.0},
    "c": {"tags": "draft", "first name": "x'); DROP TABLE sutram_memories; --", "n": True},
    "d": {"tags": [1, True, None], "n": [1]},
}

CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"tags": ["draft"]}, ["a"]),
    ({"tags": ["draft", "q3"]}, ["b"]),
    ({"tags": ["q3", "draft"]}, []),
    ({"tags": "draft"}, ["c"]),
    ({"tags": {"$ne": ["draft"]}}, ["b", "c", "d"]),
    ({"tags": [1.0, True, None]}, ["d"]),
    ({"tags": [True, 1, None]}, []),
    ({"n": [1]}, ["d"]),
    ({"n": []}, []),
    ({"first name": "Bob"}, ["b"]),
    ({"it's": 2}, ["b"]),
    ({"it's": {"$gte": 2}}, ["b"]),
    ({"it's": {"$in": [1, 2]}}, ["a", "b"]),
    ({'q"uote': {"in\\ner": "y"}}, ["b"]),
    ({'q"uote.in\\ner': "x"}, ["a"]),
    ({'q"uote.in\\ner': {"$in": ["y"]}}, ["b"]),
    ({"first name": "x'); DROP TABLE sutram_memories; --"}, ["c"]),
    ({"x'); DROP TABLE sutram_memories; --": 1}, []),
    ({"x\"]') OR 1=1 --": {"$gt": 0}}, []),
    ({"') OR 1=1 --": {"$ne": 0}}, ["a", "b", "c", "d"]),
]


@pytest.fixture
def memory(db_url: str) -> Iterator[MemoryStore]:
    with MemoryStore.from_url(db_url, tenant="t", embedder=False) as m:
        for key, value in DOCS.items():
            m.put(("ns",), key, value)
        yield m


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_filter_matches_the_reference_semantics(memory: MemoryStore, spec: dict[str, Any],
                                                expected: list[str]) -> None:
    conditions = parse_filter(spec)
    assert sorted(k for k, v in DOCS.items() if matches(conditions, v, {})) == expected
    assert sorted(r.key for r in memory.list(("ns",), filter=spec)) == expected
    assert memory.count(("ns",), filter=spec) == len(expected)


def test_hostile_filter_names_leave_the_table_intact(memory: MemoryStore) -> None:
    for spec, _ in CASES:
        memory.list(("ns",), filter=spec)
    assert memory.count(("ns",)) == len(DOCS)


@pytest.mark.parametrize("spec", [{"tags": ["draft"]}, {"tags": ["draft", "q3"]}, {"first name": "Bob"},
                                  {"it's": 2}, {"tags": "draft"}])
def test_list_and_spaced_key_filters_agree_with_in_memory_store(db_url: str, spec: dict[str, Any]) -> None:
    ref = InMemoryStore()
    with SutramStore.from_url(db_url, tenant="t", index=False) as store:
        for key, value in DOCS.items():
            ref.put(("ns",), key, value)
            store.put(("ns",), key, value)
        assert (sorted(i.key for i in store.search(("ns",), filter=spec))
                == sorted(i.key for i in ref.search(("ns",), filter=spec)))


@pytest.mark.parametrize("spec", [{"n": 2**70}, {"n": {"$gt": -(2**70)}}, {"n": {"$in": [2**64]}},
                                  {"tags": [2**70]}])
def test_integers_beyond_64_bits_are_a_typed_error_not_an_overflow(memory: MemoryStore,
                                                                     spec: dict[str, Any]) -> None:
    with pytest.raises(InvalidMemoryError, match="64-bit integer range"):
        memory.list(("ns",), filter=spec)


def test_storing_an_integer_beyond_64_bits_is_a_typed_error(db_url: str) -> None:
    with SutramStore.from_url(db_url, tenant="t", index=False) as store:
        with pytest.raises(InvalidMemoryError, match="64-bit integer range"):
            store.put(("ns",), "big", {"n": 2**70})
        assert store.get(("ns",), "big") is None


@pytest.mark.parametrize("spec", [{"": 1}, {"a..b": 1}, {"a\x00b": 1}, {"x" * 257: 1},
                                  {"tags": [["nested"]]}, {"tags": [{"a": 1}]}, {"tags": list(range(101))}])
def test_unusable_filters_are_value_errors(memory: MemoryStore, spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as caught:
        memory.list(("ns",), filter=spec)
    assert isinstance(caught.value, InvalidMemoryError)


def test_validation_errors_are_value_errors_as_in_langgraph() -> None:
    assert issubclass(InvalidMemoryError, ValueError)
    assert issubclass(InvalidCheckpointError, ValueError)
