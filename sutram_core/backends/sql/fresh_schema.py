"""The DDL that builds a new database at the current schema version, rendered ahead of time.

A new database used to get every migration compiled by SQLAlchemy and run one statement at a
time, with questions about what exists in between: on SQLite that took longer than the
statements themselves (about 27 ms against 6). The statements are the same for every new
database, so they are rendered once, from the migrations themselves, into ``_fresh_ddl.py``,
and a new database runs that text: on PostgreSQL in one round trip.

The text is kept by part of the schema (``schema.PARTS``): a new database gets the parts
asked for, and a part first needed later is made from the same text.

``_fresh_ddl.py`` is generated; never edit it by hand. After a change to ``schema.py`` or to
a migration, regenerate it::

    python -m sutram_core.backends.sql.fresh_schema

``tests/test_migrations.py`` fails while it is stale, and checks that a database built from
it equals one upgraded a step at a time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.mock import MockConnection

__all__ = ["by_part", "is_current", "render", "render_version_table", "run", "statements", "version_table"]

_GENERATED = Path(__file__).with_name("_fresh_ddl.py")
_DIALECTS = ("sqlite", "postgresql")


def _dialect(name: str) -> Dialect:
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import pysqlite

        return pysqlite.dialect()
    from sqlalchemy.dialects.postgresql import psycopg

    return psycopg.dialect()  # type: ignore[no-untyped-call]


class _Recorder(MockConnection):
    """A connection that records the DDL the migrations send, in their new-database mode."""

    def __init__(self, dialect: Dialect) -> None:
        from sutram_core.backends.sql.migrations import _FRESH

        self.sent: list[str] = []
        super().__init__(dialect, self._record)
        self.info: dict[str, Any] = {_FRESH: True}

    def _record(self, obj: Any, parameters: Any = None) -> None:
        if parameters:
            raise AssertionError(f"a migration's new-database DDL takes parameters: {obj}")
        sql = str(obj.compile(dialect=self.dialect)).strip()
        if "%" in sql:  # psycopg reads % as a placeholder marker: the text would not run as rendered
            raise AssertionError(f"a migration's DDL holds '%', which cannot be pre-rendered: {sql}")
        self.sent.append(sql)


@functools.cache
def _steps(dialect_name: str) -> tuple[tuple[str, ...], ...]:
    """The new-database DDL of each migration, in order, rendered for ``dialect_name``."""
    from sutram_core.backends.sql.migrations import MIGRATIONS

    steps = []
    for migration in MIGRATIONS:
        recorder = _Recorder(_dialect(dialect_name))
        migration.apply(recorder)  # type: ignore[arg-type]
        steps.append(tuple(recorder.sent))
    return tuple(steps)


def render(dialect_name: str, version: int | None = None) -> tuple[str, ...]:
    """The statements that take a new ``dialect_name`` database to ``version`` (the current
    one when None), rendered from ``MIGRATIONS`` (the version table and its rows are not
    among them)."""
    steps = _steps(dialect_name)
    return tuple(sql for step in steps[:len(steps) if version is None else version] for sql in step)


_NAME = re.compile(r"\bsutram_\w+")


def _part_of(sql: str) -> str:
    """The part of the schema whose tables ``sql`` makes or changes."""
    from sutram_core.backends.sql.schema import PARTS

    # a name belongs to the table it starts with (an FTS5 table or a trigger: to its table)
    owners = {part for name in _NAME.findall(sql) for part, tables in PARTS.items()
              if any(name == t.name or name.startswith(f"{t.name}_") for t in tables)}
    if len(owners) != 1:
        raise AssertionError(f"a statement of the schema's DDL belongs to {sorted(owners) or 'no part'}: {sql}")
    return owners.pop()


def by_part(sql: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``sql`` split by the part of the schema each statement belongs to, each in order."""
    from sutram_core.backends.sql.schema import PARTS

    split: dict[str, list[str]] = {part: [] for part in PARTS}
    for s in sql:
        split[_part_of(s)].append(s)
    return {part: tuple(statements) for part, statements in split.items()}


def render_version_table(dialect_name: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of the version table, rendered for ``dialect_name``."""
    from sqlalchemy.schema import CreateTable

    from sutram_core.backends.sql.schema import schema_version

    return str(CreateTable(schema_version, if_not_exists=True).compile(dialect=_dialect(dialect_name))).strip()


def version_table(dialect_name: str) -> str:
    """The pre-rendered ``CREATE TABLE IF NOT EXISTS`` of the version table."""
    from sutram_core.backends.sql import _fresh_ddl

    return _fresh_ddl.VERSION_TABLE[dialect_name]


def statements(dialect_name: str, parts: Collection[str], version: int | None = None) -> list[str]:
    """The statements that make ``parts`` of the schema in a ``dialect_name`` database, as
    they were at ``version`` (the current one when None: the pre-rendered text)."""
    from sutram_core.backends.sql import _fresh_ddl
    from sutram_core.backends.sql.migrations import MIGRATIONS
    from sutram_core.backends.sql.schema import PARTS

    if version is None or version == len(MIGRATIONS):
        split = _fresh_ddl.SQLITE if dialect_name == "sqlite" else _fresh_ddl.POSTGRESQL
    else:
        split = _split_at(dialect_name, version)
    return [sql for part in PARTS if part in parts for sql in split[part]]


@functools.cache
def _split_at(dialect_name: str, version: int) -> dict[str, tuple[str, ...]]:
    return by_part(render(dialect_name, version))


def run(conn: Connection, sql: list[str]) -> None:
    """Run the statements ``sql`` on ``conn``, inside its open transaction."""
    if not sql:
        return
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "sqlite":
            for one in sql:  # the driver runs one statement per call
                cursor.execute(one)
        else:
            cursor.execute(";\n".join(sql))  # no parameters: one round trip
    finally:
        cursor.close()


def _source() -> str:
    def block(name: str, sql: dict[str, tuple[str, ...]]) -> str:
        return (f"{name} = {{\n" + "".join(f"    {part!r}: (\n" + "".join(f"        {s!r},\n" for s in statements)
                                           + "    ),\n" for part, statements in sql.items()) + "}\n")

    return ('"""Generated by ``python -m sutram_core.backends.sql.fresh_schema``: do not edit.\n\n'
            "The DDL that takes a new database to the current schema version, by part of the schema\n"
            "(see fresh_schema.py).\n"
            '"""\n\n'
            + "VERSION_TABLE = {\n" + "".join(f"    {d!r}: {render_version_table(d)!r},\n" for d in _DIALECTS) + "}\n\n"
            + block("SQLITE", by_part(render("sqlite"))) + "\n" + block("POSTGRESQL", by_part(render("postgresql"))))


def is_current() -> bool:
    """Whether ``_fresh_ddl.py`` matches what the migrations render now."""
    return _GENERATED.read_text(encoding="utf-8") == _source()


if __name__ == "__main__":
    _GENERATED.write_text(_source(), encoding="utf-8")
    print(f"wrote {_GENERATED.name}")
