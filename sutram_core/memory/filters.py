"""The filter language of memory search, parsed once and checked before any I/O.

A filter is a mapping from a field path to a value or to operators::

    {"topic": "food"}                          equal
    {"profile": {"city": "Lyon"}}              a nested field (same as "profile.city")
    {"score": {"$gte": 3, "$lt": 8}}           $eq $ne $gt $gte $lt $lte $in
    {"lang": {"$in": ["en", "fr"]}}
    {"tags": ["draft", "q3"]}                  a list equals a list: same length, equal items in order

Field names may hold any characters except NUL (``"first name"``, ``"it's"``); a dot
separates the parts of a nested path, so a literal dot in a name cannot be filtered on.
Names and values always travel to the database as bound parameters.

``filter=`` applies to a memory's value, ``metadata=`` to its metadata. Comparisons are
typed: ``$gt`` and friends compare numbers with numbers and strings with strings, and a
number never equals a boolean. ``$ne`` matches records that lack the field. Every backend
translates the same :class:`Condition` list (SQLite JSON functions, PostgreSQL jsonb,
Weaviate properties); :func:`matches` is the reference semantics they are tested against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sutram_core.errors import InvalidMemoryError
from sutram_core.memory.records import check_number

__all__ = ["MAX_FIELD_CHARS", "MAX_LIST_ITEMS", "OPERATORS", "Condition", "matches", "parse_filter"]

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in")
MAX_FIELD_CHARS = 256  # characters in one part of a field path
MAX_LIST_ITEMS = 100  # items in a list compared for equality (each becomes one SQL term on SQLite)
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Condition:
    """One test on one field: ``column`` is "value" or "metadata"."""

    column: str
    path: tuple[str, ...]
    op: str
    operand: Any


def _check_scalar(op: str, operand: Any, where: str, label: str = "") -> None:
    if op == "$in":
        if not isinstance(operand, (list, tuple)) or not operand:
            raise InvalidMemoryError(f"$in at {where!r} needs a non-empty list, not {operand!r}")
        for i, item in enumerate(operand):
            _check_scalar("$eq", item, where, f"item {i} of the $in list")
        return
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(operand, bool) or not isinstance(operand, (int, float, str)):
            raise InvalidMemoryError(f"{op} at {where!r} compares numbers or strings, not {operand!r}")
        if not isinstance(operand, str):
            check_number(operand, f"{label or 'the ' + op + ' operand'} at {where!r}")
        return
    if isinstance(operand, (list, tuple)) and op in ("$eq", "$ne") and not label:
        # a list equals a list (LangGraph's stores compare them the same way)
        if len(operand) > MAX_LIST_ITEMS:
            raise InvalidMemoryError(
                f"a list compared at {where!r} has {len(operand)} items; at most {MAX_LIST_ITEMS} can be compared")
        for i, item in enumerate(operand):
            if isinstance(item, (list, tuple, Mapping)):
                raise InvalidMemoryError(
                    f"a list compared at {where!r} holds strings, numbers, booleans or null, not {item!r}")
            _check_scalar("$eq", item, where, f"item {i} of the list")
        return
    if operand is not None and not isinstance(operand, (str, int, float, bool)):
        raise InvalidMemoryError(
            f"filter value at {where!r} must be a string, number, boolean, null or a list of those, not "
            f"{operand!r}; use a nested mapping for nested fields"
        )
    if isinstance(operand, (int, float)):
        check_number(operand, f"{label or 'the ' + op + ' operand'} at {where!r}")


def parse_filter(spec: Mapping[str, Any] | None, column: str = "value") -> list[Condition]:
    """Parse a filter mapping into conditions, or raise :class:`InvalidMemoryError`.

    >>> parse_filter({"a": {"$gt": 1}})
    [Condition(column='value', path=('a',), op='$gt', operand=1)]
    """
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise InvalidMemoryError(f"a filter is a mapping of field to value, not {spec!r}")
    out: list[Condition] = []
    _walk(spec, (), column, out)
    return out


def _walk(spec: Mapping[str, Any], prefix: tuple[str, ...], column: str, out: list[Condition]) -> None:
    for name, wanted in spec.items():
        if not isinstance(name, str):
            raise InvalidMemoryError(f"filter field names are strings, not {name!r}")
        path = prefix + tuple(name.split("."))
        where = ".".join(path)
        for part in path:
            if not part or len(part) > MAX_FIELD_CHARS or "\x00" in part:
                raise InvalidMemoryError(
                    f"invalid filter field {where!r}: each dot-separated part is 1 to {MAX_FIELD_CHARS} "
                    "characters, without NUL"
                )
        if isinstance(wanted, Mapping):
            ops = [k for k in wanted if isinstance(k, str) and k.startswith("$")]
            if ops and len(ops) != len(wanted):
                raise InvalidMemoryError(f"filter at {where!r} mixes operators and fields: {dict(wanted)!r}")
            if not wanted:
                raise InvalidMemoryError(f"empty filter mapping at {where!r}: give a value or an operator")
            if not ops:
                _walk(wanted, path, column, out)
                continue
            for op, operand in wanted.items():
                if op not in OPERATORS:
                    raise InvalidMemoryError(f"unknown filter operator {op!r} at {where!r}: use one of {OPERATORS}")
                _check_scalar(op, operand, where)
                out.append(Condition(column, path, op, list(operand) if isinstance(operand, tuple) else operand))
        else:
            _check_scalar("$eq", wanted, where)
            out.append(Condition(column, path, "$eq", list(wanted) if isinstance(wanted, tuple) else wanted))


_MISSING = object()


def _lookup(doc: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _same(a: Any, b: Any) -> bool:
    # typed equality: True is not 1, 1 is 1.0; lists item by item
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _ordered(a: Any, op: str, b: Any) -> bool:
    x: Any
    y: Any
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        x, y = float(a), float(b)
    elif isinstance(a, str) and isinstance(b, str):
        x, y = a, b
    else:
        return False
    if op == "$gt":
        return bool(x > y)
    if op == "$gte":
        return bool(x >= y)
    if op == "$lt":
        return bool(x < y)
    return bool(x <= y)


def matches(conditions: list[Condition], value: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """The reference semantics: whether a record with ``value``/``metadata`` passes every condition."""
    for cond in conditions:
        found = _lookup(value if cond.column == "value" else metadata, cond.path)
        if cond.op == "$ne":
            if found is not _MISSING and _same(found, cond.operand):
                return False
            continue
        if found is _MISSING:
            return False
        if cond.op == "$eq":
            ok = _same(found, cond.operand)
        elif cond.op == "$in":
            ok = any(_same(found, item) for item in cond.operand)
        else:
            ok = _ordered(found, cond.op, cond.operand)
        if not ok:
            return False
    return True
