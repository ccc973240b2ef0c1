"""SQL text of the memory backend, per dialect; no I/O here.

Filters become WHERE fragments with bound parameters: field names (any characters, see
:mod:`sutram_core.memory.filters`) and values both travel as parameters, never inside the
SQL text. SQLite cannot address a key holding a double quote (or a backslash) with a JSON
path, so such a part is looked up with ``json_each`` instead.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from sutram_core.memory.filters import Condition
from sutram_core.memory.ranking import MAX_KEYWORD_CHARS, MAX_KEYWORD_TERMS, keyword_terms
from sutram_core.memory.records import NS_SEP, SYSTEM_ROOT, encode_namespace

__all__ = ["MAX_KEYWORD_CHARS", "MAX_KEYWORD_TERMS", "PgVector", "Where", "in_sql", "keyword_terms", "where_clause"]



class PgVector:
    """A float32 vector sent to PostgreSQL in pgvector's binary format (no text conversion)."""

    __slots__ = ("data",)

    def __init__(self, vector: np.ndarray) -> None:
        arr = np.asarray(vector, dtype=">f4")
        self.data = struct.pack(">HH", arr.shape[0], 0) + arr.tobytes()


def register_pg_vector_dumper(adapters: Any = None) -> None:
    """Teach psycopg to send :class:`PgVector` as binary with the type left to the server.

    ``adapters`` is the adapters map connections are made with (SQLAlchemy keeps its own).
    """
    import psycopg
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class _Dumper(Dumper):
        format = Format.BINARY
        oid = 0  # unknown: the server takes the type from the CAST around the parameter

        def dump(self, obj: PgVector) -> bytes:
            return obj.data

    (adapters if adapters is not None else psycopg.adapters).register_dumper(PgVector, _Dumper)


def fts5_query(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of ``terms`` (each quoted, so no term is an operator)."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


class Where:
    """WHERE fragments and their parameters, built up by name-safe helpers."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.parts: list[str] = []
        self.params: dict[str, Any] = {}
        self.tenant_at: int | None = None  # which part is the tenant term

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def add(self, sql: str) -> None:
        self.parts.append(sql)

    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "1=1"

    def sql_by_rowid(self) -> str:
        """The same WHERE for a query that names its rows by primary key: on SQLite the
        tenant term is written ``+m.tenant_id`` so the planner looks rows up by key instead
        of scanning the tenant's index (the IN list is the selective part)."""
        if self.dialect != "sqlite" or self.tenant_at is None:
            return self.sql()
        parts = list(self.parts)
        parts[self.tenant_at] = "+" + parts[self.tenant_at]
        return " AND ".join(parts)


def namespace_range(prefix: tuple[str, ...]) -> tuple[str, str]:
    """The half-open string range of stored namespaces under ``prefix`` (non-empty)."""
    low = encode_namespace(prefix)
    return low, low[:-1] + chr(ord(NS_SEP) + 1)


class _SqliteField:
    """How SQLite reads one field of a JSON column: its JSON type and its value (as
    ``json_type``/``json_extract`` give them), with the path bound as a parameter."""

    def __init__(self, col: str, path: tuple[str, ...], w: Where) -> None:
        if not any('"' in p or "\\" in p for p in path):
            at = w.param("$" + "".join(f'."{p}"' for p in path))
            self.kind, self.value = f"json_type({col}, {at})", f"json_extract({col}, {at})"
            self._doc, self._item = col, f"{at} || '[%d]'"
            return
        # a part JSON paths cannot spell: walk down with json_each, one key at a time
        doc = col
        for part in path[:-1]:
            doc = f"(SELECT j.value FROM json_each({doc}) j WHERE j.key = {w.param(part)} AND j.type = 'object')"
        last = w.param(path[-1])
        self.kind = f"(SELECT j.type FROM json_each({doc}) j WHERE j.key = {last})"
        self.value = f"(SELECT j.value FROM json_each({doc}) j WHERE j.key = {last})"
        self._doc, self._item = self.value, "'$[%d]'"

    def item(self, i: int) -> tuple[str, str]:
        """The JSON type and value of item ``i`` of this field (an array)."""
        at = self._item % i
        return f"json_type({self._doc}, {at})", f"json_extract({self._doc}, {at})"


def _sqlite_scalar_eq(kind: str, found: str, operand: Any, w: Where) -> str:
    if operand is None:
        return f"{kind} = 'null'"
    if isinstance(operand, bool):
        return f"{kind} = '{'true' if operand else 'false'}'"
    if isinstance(operand, (int, float)):
        return f"({kind} IN ('integer', 'real') AND {found} = {w.param(operand)})"
    return f"({kind} = 'text' AND {found} = {w.param(operand)})"


def _sqlite_eq(field: _SqliteField, operand: Any, w: Where) -> str:
    if not isinstance(operand, list):
        return _sqlite_scalar_eq(field.kind, field.value, operand, w)
    # a list equals a list of the same length whose items are equal one by one (typed)
    # (CASE, not AND: SQLite may evaluate the array tests on a string, which is not JSON)
    parts = [f"json_array_length({field.value}) = {len(operand)}"]
    parts += [_sqlite_scalar_eq(*field.item(i), item, w) for i, item in enumerate(operand)]
    return f"(CASE WHEN {field.kind} = 'array' THEN ({' AND '.join(parts)}) ELSE 0 END)"


def _pg_eq(col: str, path: tuple[str, ...], operand: Any, w: Where) -> str:
    doc: Any = operand
    for part in reversed(path):
        doc = {part: doc}
    contains = f"{col} @> CAST({w.param(orjson.dumps(doc).decode())} AS jsonb)"
    if not isinstance(operand, list):
        return contains
    # containment alone would let ["a", "b"] match ["a"]: also require equality (the
    # containment test stays, as the part the GIN index can answer)
    return f"({contains} AND {_pg_field(col, path, w)} = CAST({w.param(_dumps(operand))} AS jsonb))"


def _pg_field(col: str, path: tuple[str, ...], w: Where) -> str:
    # ``-> text`` reads object keys only (``#>`` would also index arrays by a numeric part),
    # as matches() does; each part is a bound parameter
    return col + "".join(f" -> CAST({w.param(p)} AS text)" for p in path)


_ORDER_SQL = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def condition_sql(cond: Condition, w: Where, table: str = "m") -> str:
    """One condition as SQL (typed: numbers compare with numbers, strings with strings)."""
    col = f"{table}.{cond.column}"
    if w.dialect == "sqlite":
        sfield = _SqliteField(col, cond.path, w)

        def eq(operand: Any) -> str:
            return _sqlite_eq(sfield, operand, w)

        if cond.op in _ORDER_SQL:
            kind = "('integer', 'real')" if isinstance(cond.operand, (int, float)) else "('text')"
            return (f"({sfield.kind} IN {kind} AND "
                    f"{sfield.value} {_ORDER_SQL[cond.op]} {w.param(cond.operand)})")
    else:
        field = _pg_field(col, cond.path, w)

        def eq(operand: Any) -> str:
            return _pg_eq(col, cond.path, operand, w)

        if cond.op in _ORDER_SQL:
            op = _ORDER_SQL[cond.op]
            if isinstance(cond.operand, (int, float)):
                return (f"(CASE WHEN jsonb_typeof({field}) = 'number' "
                        f"THEN ({field} #>> '{{}}')::float8 {op} {w.param(float(cond.operand))} ELSE false END)")
            return (f"(CASE WHEN jsonb_typeof({field}) = 'string' "
                    f"THEN ({field} #>> '{{}}') COLLATE \"C\" {op} {w.param(cond.operand)} ELSE false END)")
    if cond.op == "$eq":
        return eq(cond.operand)
    if cond.op == "$ne":
        return f"NOT coalesce({eq(cond.operand)}, false)"
    return in_sql(cond, w, table)


def in_sql(cond: Condition, w: Where, table: str = "m") -> str:
    """``$in`` as SQL whose size does not grow with the list: the list travels as one JSON
    parameter, unpacked by the database (SQLite ``json_each``, PostgreSQL
    ``jsonb_array_elements``), so a list of 40,000 items costs one bound value, not 40,000
    OR terms (SQLite refuses an expression tree deeper than 1,000).

    Equality stays typed as :func:`sutram_core.memory.filters.matches` defines it: SQLite
    compares numbers with numbers and strings with strings, each against its own list, and
    tests booleans and null by JSON type; PostgreSQL's jsonb equality is already typed
    (``1 = 1.0``, ``true <> 1``).
    """
    col = f"{table}.{cond.column}"
    items = list(cond.operand)
    if w.dialect != "sqlite":
        field = _pg_field(col, cond.path, w)
        return (f"coalesce({field} IN (SELECT jsonb_array_elements(CAST({w.param(_dumps(items))} AS jsonb))), "
                "false)")
    sfield = _SqliteField(col, cond.path, w)
    kind, found = sfield.kind, sfield.value
    numbers = [x for x in items if isinstance(x, (int, float)) and not isinstance(x, bool)]
    strings = [x for x in items if isinstance(x, str)]
    literals = sorted({"null" if x is None else "true" if x is True else "false"
                       for x in items if x is None or isinstance(x, bool)})
    parts = []
    if numbers:
        parts.append(f"({kind} IN ('integer', 'real') AND "
                     f"{found} IN (SELECT value FROM json_each({w.param(_dumps(numbers))})))")
    if strings:
        parts.append(f"({kind} = 'text' AND {found} IN (SELECT value FROM json_each({w.param(_dumps(strings))})))")
    if literals:
        parts.append(f"{kind} IN ({', '.join(repr(x) for x in literals)})")
    return "(" + " OR ".join(parts) + ")"


def _dumps(items: list[Any]) -> str:
    return orjson.dumps(items).decode()


def where_clause(
    dialect: str, tenant: str, *, namespace_prefix: tuple[str, ...] = (), exact_namespace: bool = False,
    exclude_system: bool = False, conditions: Sequence[Condition] = (), kinds: Sequence[str] = (), created_after: int | None = None,
    created_before: int | None = None, as_of: int | None = None, now: int, table: str = "m",
) -> Where:
    """The WHERE of a memory query: tenant, validity (current or as of), TTL and every filter."""
    w = Where(dialect)
    t = table
    w.add(f"{t}.tenant_id = {w.param(tenant)}")
    w.tenant_at = 0
    if namespace_prefix:
        if exact_namespace:
            w.add(f"{t}.namespace = {w.param(encode_namespace(namespace_prefix))}")
        else:
            low, high = namespace_range(namespace_prefix)
            w.add(f"{t}.namespace >= {w.param(low)} AND {t}.namespace < {w.param(high)}")
    elif exclude_system:  # Sutram's own memories, outside a search that names no namespace
        low, high = namespace_range((SYSTEM_ROOT,))
        w.add(f"({t}.namespace < {w.param(low)} OR {t}.namespace >= {w.param(high)})")
    if as_of is None:
        w.add(f"{t}.valid_to IS NULL")
    else:
        at = w.param(as_of)
        w.add(f"{t}.valid_from <= {at} AND ({t}.valid_to IS NULL OR {t}.valid_to > {at})")
    w.add(f"({t}.expires_at IS NULL OR {t}.expires_at > {w.param(now)})")
    if kinds:
        w.add(f"{t}.kind IN (" + ", ".join(w.param(k) for k in kinds) + ")")
    if created_after is not None:
        w.add(f"{t}.created_at >= {w.param(created_after)}")
    if created_before is not None:
        w.add(f"{t}.created_at < {w.param(created_before)}")
    for cond in conditions:
        w.add(condition_sql(cond, w, t))
    return w


def pk_in(dialect: str, pks: Sequence[int]) -> tuple[str, Any]:
    """``m.pk`` among ``pks``, as SQL and the value of its parameter ``:pks``.

    One statement text for every list: SQLAlchemy compiles it once and the driver keeps it
    prepared (an inlined list made each read a new statement, compiled and parsed anew).
    """
    if dialect == "sqlite":
        return "m.pk IN (SELECT value FROM json_each(:pks))", "[" + ",".join(map(str, map(int, pks))) + "]"
    return "m.pk = ANY(:pks)", [int(p) for p in pks]
