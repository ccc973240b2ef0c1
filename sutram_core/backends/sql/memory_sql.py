"""SQL text of the memory backend, per dialect; no I/O here.

Filters become WHERE fragments with bound parameters. Field paths are validated by
:func:`sutram_core.memory.filters.parse_filter` (letters, digits, ``_`` and ``-`` only)
before they are spliced into a JSON path; every value travels as a parameter.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from sutram_core.memory.filters import Condition
from sutram_core.memory.records import NS_SEP, encode_namespace

__all__ = ["PgVector", "Where", "keyword_terms", "where_clause"]

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
# Words that carry no topic: dropped from keyword queries (they match everything and drown BM25).
_STOPWORDS = frozenset(
    "a an and are as at be by can could did do does for from had has have how i in is it its me my "
    "of on or our she he should so that the their them they this to was we were what when where "
    "which who whom why will with would you your".split()
)


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


def keyword_terms(query: str) -> list[str]:
    """The content words of a query, lower-cased, stop words removed, in order, unique."""
    seen: dict[str, None] = {}
    for word in _WORD_RE.findall(query.lower()):
        if word not in _STOPWORDS and len(word) > 1:
            seen.setdefault(word, None)
    return list(seen)


def fts5_query(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of ``terms`` (each quoted, so no term is an operator)."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def tsquery(terms: Sequence[str]) -> str:
    """A PostgreSQL tsquery text matching any of ``terms`` (they hold letters and digits only)."""
    return " | ".join(terms)


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


def _sqlite_eq(col: str, path: str, operand: Any, w: Where) -> str:
    if operand is None:
        return f"json_type({col}, '{path}') = 'null'"
    if isinstance(operand, bool):
        return f"json_type({col}, '{path}') = '{'true' if operand else 'false'}'"
    if isinstance(operand, (int, float)):
        return f"(json_type({col}, '{path}') IN ('integer', 'real') AND json_extract({col}, '{path}') = {w.param(operand)})"
    return f"(json_type({col}, '{path}') = 'text' AND json_extract({col}, '{path}') = {w.param(operand)})"


def _pg_eq(col: str, path: tuple[str, ...], operand: Any, w: Where) -> str:
    doc: Any = operand
    for part in reversed(path):
        doc = {part: doc}
    return f"{col} @> CAST({w.param(orjson.dumps(doc).decode())} AS jsonb)"


_ORDER_SQL = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def condition_sql(cond: Condition, w: Where, table: str = "m") -> str:
    """One condition as SQL (typed: numbers compare with numbers, strings with strings)."""
    col = f"{table}.{cond.column}"
    if w.dialect == "sqlite":
        path = "$" + "".join(f'."{p}"' for p in cond.path)

        def eq(operand: Any) -> str:
            return _sqlite_eq(col, path, operand, w)

        if cond.op in _ORDER_SQL:
            kind = "('integer', 'real')" if isinstance(cond.operand, (int, float)) else "('text')"
            return (f"(json_type({col}, '{path}') IN {kind} AND "
                    f"json_extract({col}, '{path}') {_ORDER_SQL[cond.op]} {w.param(cond.operand)})")
    else:
        pg_path = "'{" + ",".join(cond.path) + "}'"

        def eq(operand: Any) -> str:
            return _pg_eq(col, cond.path, operand, w)

        if cond.op in _ORDER_SQL:
            op = _ORDER_SQL[cond.op]
            if isinstance(cond.operand, (int, float)):
                return (f"(CASE WHEN jsonb_typeof({col} #> {pg_path}) = 'number' "
                        f"THEN ({col} #>> {pg_path})::float8 {op} {w.param(float(cond.operand))} ELSE false END)")
            return (f"(CASE WHEN jsonb_typeof({col} #> {pg_path}) = 'string' "
                    f"THEN ({col} #>> {pg_path}) COLLATE \"C\" {op} {w.param(cond.operand)} ELSE false END)")
    if cond.op == "$eq":
        return eq(cond.operand)
    if cond.op == "$ne":
        return f"NOT coalesce({eq(cond.operand)}, false)"
    return "(" + " OR ".join(eq(item) for item in cond.operand) + ")"  # $in


def where_clause(
    dialect: str, tenant: str, *, namespace_prefix: tuple[str, ...] = (), exact_namespace: bool = False,
    conditions: Sequence[Condition] = (), kinds: Sequence[str] = (), created_after: int | None = None,
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
