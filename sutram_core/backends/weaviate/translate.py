"""From Sutram's memory model to Weaviate's, and back; no I/O here.

- A Sutram tenant is a Weaviate tenant (native multi-tenancy): ids Weaviate accepts as
  tenant names are used as they are, others by a digest (:func:`tenant_name`).
- A record is one object. Its value's and metadata's scalar fields are also stored as
  flat, typed properties (``v_<path>_s`` text, ``_n`` number, ``_b`` boolean, ``_z`` null
  marker), because Weaviate cannot filter inside JSON; :func:`flat_properties` makes them
  and :func:`to_filter` turns Sutram's filter language into filters on them, with the same
  typed semantics as SQL (see :mod:`sutram_core.memory.filters`).
- "Current" and "not expired" use a far-future sentinel instead of null, so no null index
  is needed: ``valid_to == OPEN`` means current.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import reduce
from typing import Any

from sutram_core.memory.filters import Condition
from sutram_core.memory.records import SYSTEM_ROOT, encode_namespace

__all__ = ["OPEN", "flat_properties", "object_uuid", "prefixes", "property_name", "tenant_name", "to_filter"]

OPEN = 2**62  # valid_to / expires_at of a record that is current / never expires
_TENANT_RE = re.compile(r"[A-Za-z0-9\-_]{1,64}")
_NS_UUID = uuid.UUID("5d1a3c52-7a43-4c1e-9d0b-2f1b6a0e8c11")


def tenant_name(tenant: str) -> str:
    """The Weaviate tenant name of a Sutram tenant id (injective on valid Sutram ids)."""
    if _TENANT_RE.fullmatch(tenant) and not tenant.startswith("sx--"):
        return tenant
    return "sx--" + hashlib.sha256(tenant.encode()).hexdigest()[:56]


def object_uuid(tenant: str, namespace: tuple[str, ...], key: str, version: int) -> str:
    """A deterministic object id: writing the same version twice overwrites, never duplicates."""
    return str(uuid.uuid5(_NS_UUID, f"{tenant}\x1e{encode_namespace(namespace)}\x1e{key}\x1e{version}"))


def _escape(part: str) -> str:
    # Weaviate property names are [_A-Za-z][_0-9A-Za-z]*, and their first letter's case is
    # not kept: everything outside [a-z0-9] becomes _xx (hex), which keeps names distinct.
    return "".join(ch if ch.isascii() and (ch.islower() or ch.isdigit()) else f"_{ord(ch):02x}" for ch in part)


def property_name(column: str, path: Sequence[str], kind: str) -> str:
    """The flat property holding a field: ``column`` "value" or "metadata", ``kind`` s/n/b/z,
    or j for a list (its canonical JSON, compared whole, as a list filter compares on SQL)."""
    return f"{column[0]}_{'__'.join(_escape(p) for p in path)}_{kind}"


def _leaves(doc: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, val in doc.items():
        if not isinstance(name, str):
            continue
        if isinstance(val, Mapping):
            yield from _leaves(val, (*path, name))
        elif val is None or isinstance(val, (str, int, float, bool, list)):
            yield (*path, name), val


def flat_properties(value: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The typed flat properties of a record's scalar fields."""
    out: dict[str, Any] = {}
    for column, doc in (("value", value), ("metadata", metadata)):
        for path, val in _leaves(doc):
            if val is None:
                out[property_name(column, path, "z")] = True
            elif isinstance(val, bool):
                out[property_name(column, path, "b")] = val
            elif isinstance(val, (int, float)):
                out[property_name(column, path, "n")] = float(val)
            elif isinstance(val, list):
                out[property_name(column, path, "j")] = list_key(val)
            else:
                out[property_name(column, path, "s")] = val
    return out


def list_key(items: list[Any]) -> str:
    """A list as the text its equality is decided on (JSON, object keys sorted)."""
    import orjson

    return orjson.dumps(items, option=orjson.OPT_SORT_KEYS).decode()


def prefixes(namespace: tuple[str, ...]) -> list[str]:
    """Every stored prefix of a namespace, so a prefix search is one ``contains_any``."""
    return [encode_namespace(namespace[:i]) for i in range(1, len(namespace) + 1)]


def _never() -> Any:
    """A filter no object passes (a key is never empty)."""
    from weaviate.classes.query import Filter

    return Filter.by_property("key").equal("")


def _eq(cond: Condition, operand: Any, known: Callable[[str], bool]) -> Any:
    """Equality on the typed property ``operand`` lives in; None when no object has that
    property (Weaviate refuses a filter on a property its schema does not have)."""
    from weaviate.classes.query import Filter

    if isinstance(operand, list):
        name, operand = property_name(cond.column, cond.path, "j"), list_key(operand)
    elif operand is None:
        name, operand = property_name(cond.column, cond.path, "z"), True
    elif isinstance(operand, bool):
        name = property_name(cond.column, cond.path, "b")
    elif isinstance(operand, (int, float)):
        name, operand = property_name(cond.column, cond.path, "n"), float(operand)
    else:
        name = property_name(cond.column, cond.path, "s")
    return Filter.by_property(name).equal(operand) if known(name) else None


def condition_filter(cond: Condition, known: Callable[[str], bool] = lambda name: True) -> Any:
    """One condition as a Weaviate filter: :data:`ALWAYS` when every object passes it,
    and a filter none passes when it names a property no object has."""
    from weaviate.classes.query import Filter

    if cond.op == "$eq":
        found = _eq(cond, cond.operand, known)
        return _never() if found is None else found
    if cond.op == "$ne":  # a field an object lacks is not equal to anything
        found = _eq(cond, cond.operand, known)
        return ALWAYS if found is None else ~found
    if cond.op == "$in":
        found = [f for f in (_eq(cond, item, known) for item in cond.operand) if f is not None]
        return reduce(lambda a, b: a | b, found) if found else _never()
    numeric = isinstance(cond.operand, (int, float))
    name = property_name(cond.column, cond.path, "n" if numeric else "s")
    if not known(name):
        return _never()
    prop = Filter.by_property(name)
    operand = float(cond.operand) if numeric else cond.operand
    method = {"$gt": prop.greater_than, "$gte": prop.greater_or_equal, "$lt": prop.less_than,
              "$lte": prop.less_or_equal}[cond.op]
    return method(operand)


ALWAYS = object()  # a condition every object passes: left out of the filter


def to_filter(
    *, namespace_prefix: tuple[str, ...] = (), exact_namespace: bool = False, exclude_system: bool = False,
    conditions: Sequence[Condition] = (),
    kinds: Sequence[str] = (), created_after: int | None = None, created_before: int | None = None,
    as_of: int | None = None, now: int, key: str | None = None, known: Callable[[str], bool] = lambda name: True,
) -> Any:
    """The whole WHERE of a memory query as one Weaviate filter; ``known`` says which
    properties the collection's schema has (a condition on another matches no object)."""
    from weaviate.classes.query import Filter

    parts: list[Any] = []
    if namespace_prefix:
        encoded = encode_namespace(namespace_prefix)
        parts.append(Filter.by_property("namespace").equal(encoded) if exact_namespace
                     else Filter.by_property("ns_prefixes").contains_any([encoded]))
    elif exclude_system:  # Sutram's own memories, outside a search that names no namespace
        parts.append(~Filter.by_property("ns_prefixes").contains_any([encode_namespace((SYSTEM_ROOT,))]))
    if key is not None:
        parts.append(Filter.by_property("key").equal(key))
    if as_of is None:
        parts.append(Filter.by_property("valid_to").equal(OPEN))
    else:
        parts.append(Filter.by_property("valid_from").less_or_equal(as_of))
        parts.append(Filter.by_property("valid_to").greater_than(as_of))
    parts.append(Filter.by_property("expires_at").greater_than(now))
    if kinds:
        parts.append(Filter.by_property("kind").contains_any(list(kinds)))
    if created_after is not None:
        parts.append(Filter.by_property("created_at").greater_or_equal(created_after))
    if created_before is not None:
        parts.append(Filter.by_property("created_at").less_than(created_before))
    parts.extend(f for f in (condition_filter(c, known) for c in conditions) if f is not ALWAYS)
    return Filter.all_of(parts)
