"""The Weaviate translation, checked without a server.

No Weaviate server can be installed from the package registries on this machine, so the
live contract suite (tests/test_memory_contract.py) skips Weaviate unless
SUTRAM_WEAVIATE_URL is set. Here the filters the backend would send are evaluated by a
small interpreter of Weaviate's filter operators over the flat properties the backend
would store, and must agree with Sutram's reference filter semantics.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("weaviate")

from weaviate.collections.classes.filters import (
    _FilterAnd,
    _FilterNot,
    _FilterOr,
    _FilterValue,
    _Operator,
)

from sutram_core.backends.weaviate.translate import (
    OPEN,
    flat_properties,
    object_uuid,
    prefixes,
    property_name,
    tenant_name,
    to_filter,
)
from sutram_core.memory import matches, parse_filter
from sutram_core.memory.records import encode_namespace
from sutram_core.tenancy import validate_tenant


def evaluate(f: Any, props: dict[str, Any]) -> bool:
    """Weaviate's filter semantics over one object's properties (a missing property matches nothing)."""
    if isinstance(f, _FilterAnd):
        return all(evaluate(x, props) for x in f.filters)
    if isinstance(f, _FilterOr):
        return any(evaluate(x, props) for x in f.filters)
    if isinstance(f, _FilterNot):
        return not evaluate(f.filters[0], props)
    assert isinstance(f, _FilterValue)
    have = props.get(f.target)  # type: ignore[call-overload]
    if have is None:
        return False
    op, want = f.operator, f.value
    if op == _Operator.EQUAL:
        return bool(have == want) and type(have) is type(want)
    if op == _Operator.CONTAINS_ANY:
        return any(v in (have if isinstance(have, list) else [have]) for v in want)  # type: ignore[union-attr]
    cmp = {_Operator.GREATER_THAN: lambda a, b: a > b, _Operator.GREATER_THAN_EQUAL: lambda a, b: a >= b,
           _Operator.LESS_THAN: lambda a, b: a < b, _Operator.LESS_THAN_EQUAL: lambda a, b: a <= b}[op]
    return bool(cmp(have, want))


def stored(value: dict[str, Any], ns: tuple[str, ...] = ("a", "b"), *, valid_to: int = OPEN,
           expires_at: int = OPEN) -> dict[str, Any]:
    return {"namespace": encode_namespace(ns), "ns_prefixes": prefixes(ns), "key": "k", "kind": "semantic",
            "valid_from": 10, "valid_to": valid_to, "expires_at": expires_at, "created_at": 10,
            **flat_properties(value, {})}


_scalars = st.one_of(st.integers(-3, 3), st.sampled_from(["red", "blue", ""]), st.booleans(), st.none(),
                     st.floats(-3, 3, allow_nan=False).map(lambda f: round(f, 1)))
_values = st.fixed_dictionaries({}, optional={"color": _scalars, "n": _scalars,
                                              "deep": st.fixed_dictionaries({}, optional={"x": _scalars})})


@st.composite
def _specs(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in draw(st.lists(st.sampled_from(["color", "n", "deep.x"]), max_size=2, unique=True)):
        op = draw(st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in"]))
        if op in ("$gt", "$gte", "$lt", "$lte"):
            operand: Any = draw(st.one_of(st.integers(-3, 3), st.sampled_from(["blue", "m", "red"])))
        elif op == "$in":
            operand = draw(st.lists(_scalars, min_size=1, max_size=3))
        else:
            operand = draw(_scalars)
        out[field] = {op: operand}
    return out


@settings(max_examples=300, deadline=None)
@given(value=_values, spec=_specs())
def test_translated_filters_agree_with_the_reference_semantics(value: dict[str, Any], spec: dict[str, Any]) -> None:
    conditions = parse_filter(spec)
    f = to_filter(conditions=conditions, now=100)
    assert evaluate(f, stored(value)) == matches(conditions, value, {})


def test_namespace_validity_and_expiry_filters() -> None:
    props = stored({}, ("users", "u1", "prefs"))
    assert evaluate(to_filter(namespace_prefix=("users",), now=5), props)
    assert evaluate(to_filter(namespace_prefix=("users", "u1"), now=5), props)
    assert not evaluate(to_filter(namespace_prefix=("users", "u2"), now=5), props)
    assert not evaluate(to_filter(namespace_prefix=("users",), exact_namespace=True, now=5), props)
    assert evaluate(to_filter(namespace_prefix=("users", "u1", "prefs"), exact_namespace=True, now=5), props)
    closed = stored({}, valid_to=50)
    assert not evaluate(to_filter(now=5), closed)
    assert evaluate(to_filter(as_of=20, now=5), closed) and not evaluate(to_filter(as_of=60, now=5), closed)
    expiring = stored({}, expires_at=30)
    assert evaluate(to_filter(now=29), expiring) and not evaluate(to_filter(now=30), expiring)
    assert evaluate(to_filter(kinds=["semantic", "episodic"], now=1), props)
    assert not evaluate(to_filter(kinds=["procedural"], now=1), props)
    assert evaluate(to_filter(created_after=10, created_before=11, now=1), props)


def test_property_names_are_distinct_and_valid_for_weaviate() -> None:
    import re

    names = {property_name("value", p, k) for p in [("a",), ("A",), ("a_b",), ("a", "b"), ("a-b",), ("ab",)]
             for k in "snbz"}
    assert len(names) == 24
    assert all(re.fullmatch(r"[_a-z][_0-9a-z]*", n) for n in names)
    assert property_name("metadata", ("a",), "s") != property_name("value", ("a",), "s")


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}", fullmatch=True))
def test_tenant_names_are_valid_weaviate_names_and_distinct(tenant: str) -> None:
    import re

    validate_tenant(tenant)
    name = tenant_name(tenant)
    assert re.fullmatch(r"[A-Za-z0-9\-_]{1,64}", name)
    assert tenant_name(tenant + "x") != name


def test_object_ids_are_deterministic_per_version() -> None:
    a = object_uuid("acme", ("u",), "k", 1)
    assert a == object_uuid("acme", ("u",), "k", 1)
    assert len({a, object_uuid("acme", ("u",), "k", 2), object_uuid("globex", ("u",), "k", 1)}) == 3


def test_a_search_without_namespace_leaves_out_sutrams_own_memories() -> None:
    runs, users = stored({}, ("sutram", "runs", "g")), stored({}, ("users", "sutram"))
    assert not evaluate(to_filter(exclude_system=True, now=5), runs)
    assert evaluate(to_filter(exclude_system=True, now=5), users)
    assert evaluate(to_filter(now=5), runs)  # only a search without a namespace excludes
    assert evaluate(to_filter(namespace_prefix=("sutram", "runs"), exclude_system=True, now=5), runs)
