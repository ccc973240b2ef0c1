"""Ordered schema migrations with a recorded version.

``MIGRATIONS[i]`` takes the schema from version ``i`` to ``i + 1``. Each runs in its own
transaction, under a lock (PostgreSQL advisory lock; SQLite ``BEGIN IMMEDIATE``), so
several processes may call ``setup()`` at once. A database made by an older Sutram
upgrades in place; one made by a newer Sutram is refused.

Two cases skip the per-step work: a database already at the current version is read once,
without the lock (opening a saver on it does no schema work), and a new database gets the
DDL of every step in one transaction, rendered ahead of time (``fresh_schema``), without
asking, table by table, what exists (nothing does).

From version 14 the schema is made in parts (``schema.PARTS``), each when something first
needs it: a database at the current version may lack the parts nothing has used yet, and
one is added in a transaction of its own, from the same rendered DDL. A database made before
version 14 holds every part. A step names the parts it changes (``Migration.parts``; every
part for the steps before version 14). Before a partial database goes through a step, the
step's missing parts are made as they were at its version, so that the step finds its
tables; a step that changes none of the parts present is skipped, and a part made later is
made as the last version has it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from sqlalchemy import Connection, Index, Table, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from sutram_core.backends.sql import schema
from sutram_core.errors import ConfigurationError, SchemaVersionError

__all__ = ["MIGRATIONS", "SQLITE_PART_TABLES", "Migration", "current_version", "present_parts", "upgrade"]


@dataclass(frozen=True)
class Migration:
    """One step of the schema history. ``parts``: the parts of the schema it changes (every
    part for the steps before version 14, which took every table to exist)."""

    description: str
    apply: Callable[[Connection], None]
    parts: frozenset[str] = schema.ALL_PARTS


_FRESH = "sutram_fresh_schema"  # in conn.info while a new database is built: nothing exists yet


def _building_new(conn: Connection) -> bool:
    """Whether ``conn`` is building a new database (a step then asks nothing of what exists)."""
    return bool(conn.info.get(_FRESH, False))


def _create_table(conn: Connection, table: Table, indexes: tuple[Index, ...] = ()) -> None:
    # CREATE TABLE alone: the Table object also carries indexes that later versions add.
    fresh = _building_new(conn)
    if fresh or not inspect(conn).has_table(table.name):
        conn.execute(CreateTable(table))
    for index in indexes:
        index.create(conn, checkfirst=not fresh)


def _v1_checkpoints(conn: Connection) -> None:
    _create_table(conn, schema.checkpoints)
    _create_table(conn, schema.checkpoint_blobs, (schema.blob_chain_index,))
    _create_table(conn, schema.checkpoint_writes)


def _v2_tombstones_and_run_index(conn: Connection) -> None:
    _create_table(conn, schema.thread_tombstones)
    schema.run_index.create(conn, checkfirst=not _building_new(conn))


def _v3_traces_and_audit(conn: Connection) -> None:
    _create_table(conn, schema.spans, (schema.span_start_index, schema.span_thread_index))
    _create_table(conn, schema.audit_log)


def _v4_memories(conn: Connection) -> None:
    _create_table(conn, schema.memories, (
        schema.memory_current_index, schema.memory_id_index, schema.memory_key_index,
        schema.memory_seq_index, schema.memory_expiry_index,
    ))
    _create_table(conn, schema.memory_state)
    if conn.dialect.name == "sqlite":
        # keyword search: an FTS5 index over the text, kept in step by triggers
        conn.execute(text(
            "CREATE VIRTUAL TABLE IF NOT EXISTS sutram_memories_fts USING fts5("
            "text, content='sutram_memories', content_rowid='pk', tokenize='porter unicode61')"
        ))
        conn.execute(text(
            "CREATE TRIGGER IF NOT EXISTS sutram_memories_fts_ai AFTER INSERT ON sutram_memories BEGIN "
            "INSERT INTO sutram_memories_fts(rowid, text) VALUES (new.pk, new.text); END"
        ))
        conn.execute(text(
            "CREATE TRIGGER IF NOT EXISTS sutram_memories_fts_ad AFTER DELETE ON sutram_memories BEGIN "
            "INSERT INTO sutram_memories_fts(sutram_memories_fts, rowid, text) VALUES ('delete', old.pk, old.text); END"
        ))
        conn.execute(text(
            "CREATE TRIGGER IF NOT EXISTS sutram_memories_fts_au AFTER UPDATE OF text ON sutram_memories BEGIN "
            "INSERT INTO sutram_memories_fts(sutram_memories_fts, rowid, text) VALUES ('delete', old.pk, old.text); "
            "INSERT INTO sutram_memories_fts(rowid, text) VALUES (new.pk, new.text); END"
        ))
    else:
        # a new database gets version 8's expression at once (its step 8 then does nothing)
        expression = TSV_EXPRESSION if _building_new(conn) else "to_tsvector('english', text)"
        conn.execute(text(
            f"ALTER TABLE sutram_memories ADD COLUMN IF NOT EXISTS tsv tsvector GENERATED ALWAYS AS ({expression}) STORED"
        ))
        # fastupdate off: a GIN pending list makes searches after a burst of writes several
        # times slower until vacuum merges it; memory search latency matters more
        conn.execute(text(
            "CREATE INDEX IF NOT EXISTS ix_sutram_memories_tsv ON sutram_memories USING gin (tsv) "
            "WITH (fastupdate = off)"
        ))
        conn.execute(text(
            "CREATE INDEX IF NOT EXISTS ix_sutram_memories_value ON sutram_memories USING gin (value jsonb_path_ops) "
            "WITH (fastupdate = off)"
        ))


def _v5_runs(conn: Connection) -> None:
    _create_table(conn, schema.runs, (schema.run_lease_index, schema.run_thread_index))
    _create_table(conn, schema.journal)


def _v6_run_inputs(conn: Connection) -> None:
    _create_table(conn, schema.run_inputs)


def _v7_keyed_audit_hashes(conn: Connection) -> None:
    # a keyed audit hash is "k1:<key id>:<hmac>" (80 characters); SQLite does not enforce
    # VARCHAR lengths, and a database created at this version already has the wider columns
    if conn.dialect.name == "postgresql" and not _building_new(conn):
        conn.execute(text("ALTER TABLE sutram_audit_log ALTER COLUMN prev_hash TYPE VARCHAR(128), "
                          "ALTER COLUMN hash TYPE VARCHAR(128)"))


# PostgreSQL's parser keeps "v6.31.90", "db-61.eu-west" or "a_b" as one token, so a search
# for "31" or "db 61" missed them; SQLite's FTS5 splits them. Splitting them here too gives
# both databases the same words (translate, not a regex class: those are ASCII-only under
# the C locale and would drop every non-ASCII letter).
TSV_EXPRESSION = "to_tsvector('english', translate(text, '.-/_:@#+=|\\', '           '))"


def _v8_split_tokens(conn: Connection) -> None:
    if conn.dialect.name == "postgresql" and not _building_new(conn):
        conn.execute(text("ALTER TABLE sutram_memories DROP COLUMN IF EXISTS tsv"))
        conn.execute(text(f"ALTER TABLE sutram_memories ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
                          f"({TSV_EXPRESSION}) STORED"))
        conn.execute(text("CREATE INDEX IF NOT EXISTS ix_sutram_memories_tsv ON sutram_memories USING gin (tsv) "
                          "WITH (fastupdate = off)"))


def _v9_model_call_index(conn: Connection) -> None:
    schema.span_model_call_index.create(conn, checkfirst=not _building_new(conn))


def _v10_workflow_handlers(conn: Connection) -> None:
    _create_table(conn, schema.workflow_handlers,
                  (schema.workflow_handler_id_index, schema.workflow_handler_run_index))
    _create_table(conn, schema.workflow_events)
    _create_table(conn, schema.workflow_ticks)
    _create_table(conn, schema.workflow_state)


def _v11_workflow_journal(conn: Connection) -> None:
    _create_table(conn, schema.workflow_journal)


def _v12_partial_chain_index(conn: Connection) -> None:
    _remake_partial(conn, schema.blob_chain_index, "base_version IS NOT NULL")


def _remake_partial(conn: Connection, index: Index, where: str) -> None:
    """Make ``index`` again as the partial index it now is (``where``: its condition)."""
    if _building_new(conn):
        return  # the step that made it made it partial already
    if conn.dialect.name != "postgresql":  # SQLite (WAL): readers go on while a writer works
        conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
        index.create(conn)
        return
    # PostgreSQL: the new index is built under another name first (the build holds writers
    # back, not readers); the lock that holds readers back too (DROP) is taken last
    cols = ", ".join(c.name for c in index.columns)
    table = index.table
    assert table is not None
    conn.execute(text(f"CREATE INDEX {index.name}_new ON {table.name} ({cols}) WHERE {where}"))
    conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    conn.execute(text(f"ALTER INDEX {index.name}_new RENAME TO {index.name}"))


def _v13_scalars_in_checkpoint_rows(conn: Connection) -> None:
    """No DDL. From this version a checkpoint row may carry its scalar channel values and
    the versions of its empty channels (in its ``checkpoint`` data) instead of a row of
    ``checkpoint_blobs`` each; the version is recorded so that an older Sutram, which would
    read such a checkpoint without them, refuses the database instead."""


def _v14_parts_on_first_use(conn: Connection) -> None:
    """No DDL. From this version a database may hold only the parts of the schema that
    something has used (a saver alone: the checkpoint tables); the version is recorded so
    that an older Sutram, which takes every table to exist, refuses the database instead."""


def _v15_partial_run_index(conn: Connection) -> None:
    _remake_partial(conn, schema.run_index, "run_id IS NOT NULL")


MIGRATIONS: list[Migration] = [
    Migration("checkpoints, channel blobs and pending writes", _v1_checkpoints),
    Migration("thread tombstones; index of checkpoints by run id", _v2_tombstones_and_run_index),
    Migration("trace spans and the per-tenant audit hash chain", _v3_traces_and_audit),
    Migration("memories, their keyword index and per-tenant change numbers", _v4_memories),
    Migration("the run ledger (runs, leases, fences) and the call journal", _v5_runs),
    Migration("the inputs runs were started with", _v6_run_inputs),
    Migration("audit hashes wide enough for keyed (HMAC) entries", _v7_keyed_audit_hashes),
    Migration("keyword index splits dotted and dashed tokens on PostgreSQL", _v8_split_tokens),
    Migration("an index of each tenant's model calls by time (stats, model filter)", _v9_model_call_index),
    Migration("LlamaIndex workflow server handlers, their events, ticks and state", _v10_workflow_handlers),
    Migration("durable LlamaIndex workflow runs: the journal of runtime ticks", _v11_workflow_journal),
    Migration("the index of list-delta chains holds delta rows only", _v12_partial_chain_index),
    Migration("scalar values and empty channels kept in their checkpoint's row", _v13_scalars_in_checkpoint_rows),
    Migration("each part of the schema made when first needed", _v14_parts_on_first_use),
    Migration("the index of checkpoints by run id holds rows with a run id only", _v15_partial_run_index,
              frozenset({"checkpoints"})),
]

_PG_LOCK_KEY = 0x53757472  # "Sutr": the advisory lock that serializes migrations


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 for an empty database)."""
    if not inspect(conn).has_table(schema.schema_version.name):
        return 0
    return _recorded_version(conn)


# Plain text: setup() on a new database compiled every SQLAlchemy construct it ran, and
# those compilations took longer than SQLite took to create the tables.
_MAX_VERSION = text(f"SELECT max(version) FROM {schema.schema_version.name}")
_RECORD_VERSION = text(f"INSERT INTO {schema.schema_version.name} (version, description, applied_at) "
                       "VALUES (:version, :description, :applied_at)")


# PostgreSQL: also where the name resolved, and where new tables would go. Unqualified
# names resolve through search_path, but CREATE TABLE makes them in current_schema(): with
# search_path "app, public" and Sutram's tables in public (another deployment's), Sutram
# would use public's tables, and make any new one in app.
_ANCHORS = {tables[0].name: part for part, tables in schema.PARTS.items()}  # a part's first table
_ANCHOR_LIST = ", ".join(f"'{name}'" for name in _ANCHORS)
_PG_MAX_VERSION = text(
    f"SELECT (SELECT max(version) FROM {schema.schema_version.name}), n.nspname, current_schema(), "
    "(SELECT string_agg(relname, ',') FROM pg_class WHERE relnamespace = c.relnamespace "
    f"AND relkind IN ('r', 'p') AND relname IN ({_ANCHOR_LIST})) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE c.oid = to_regclass('{schema.schema_version.name}')")
# SQLite: the first tables of the parts the file has (see present_parts)
SQLITE_PART_TABLES = f"SELECT name FROM main.sqlite_master WHERE type = 'table' AND name IN ({_ANCHOR_LIST})"
_SQLITE_MAX_VERSION = text(
    f"SELECT max(version), (SELECT group_concat(name) FROM ({SQLITE_PART_TABLES})) FROM {schema.schema_version.name}")


# the tables where CREATE TABLE puts them (SQLAlchemy's reflection asked the same at several
# times the cost: 4-8 ms of a new PostgreSQL database's setup)
_PG_TABLES = text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
_SQLITE_TABLES = text("SELECT name FROM sqlite_master WHERE type = 'table'")


def _recorded_version(conn: Connection) -> int:
    """The highest version in the version table, which exists (0 when it is empty)."""
    return int(conn.execute(_MAX_VERSION).scalar() or 0)


def _version_unlocked(conn: Connection) -> tuple[int, frozenset[str]] | None:
    """The recorded version and the parts present, read without the migration lock, or
    None when they cannot be read so (no version table yet, or the read failed: the locked
    path decides)."""
    conn.info["sutram_write"] = False  # SQLite: a plain BEGIN, no write lock
    try:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                found, there, here, anchors = conn.execute(_PG_MAX_VERSION).one()
                if there != here:
                    raise _other_schema(there, here)
            else:
                found, anchors = conn.execute(_SQLITE_MAX_VERSION).one()
    except DBAPIError:
        return None
    finally:
        conn.info.pop("sutram_write", None)
    if found is None:
        return None
    return int(found), present_parts((anchors or "").split(","))


def present_parts(tables: Iterable[str]) -> frozenset[str]:
    """The parts of the schema whose first table is among ``tables``."""
    return frozenset(_ANCHORS[name] for name in tables if name in _ANCHORS)


def _other_schema(there: str, here: str | None) -> ConfigurationError:
    where = f"in schema {here!r}" if here else "nowhere (no schema of the search_path exists)"
    # PostgreSQL folds an unquoted name to lower case: "Other-x" must stay quoted, or the
    # advice would point at a schema that does not exist (and tables would go to public)
    ident = there if re.fullmatch(r"[a-z_][a-z0-9_$]*", there) else '"' + there.replace('"', '""') + '"'
    return ConfigurationError(
        f"Sutram's tables were found in PostgreSQL schema {there!r} through this connection's search_path, "
        f"but new tables would be made {where} (current_schema()): Sutram would share {there!r}'s data and "
        f"split its schema. Put the schema Sutram should use first on the search_path, for example "
        f"?options={quote(f'-csearch_path={ident},public', safe='')} (or drop the tables from {there!r} if "
        "they are not yours)")


def upgrade(conn: Connection, target: int | None = None, parts: Collection[str] = schema.ALL_PARTS) -> int:
    """Apply the pending migrations in one transaction each, and make the ``parts`` of the
    schema that are missing; return the new version.

    ``conn`` must not be inside a transaction. ``target`` stops early (used by tests that
    build a database as an older version made it).
    """
    goal = len(MIGRATIONS) if target is None else target
    probe = _version_unlocked(conn)
    if probe is not None:
        known, present = probe
        if known > len(MIGRATIONS):
            raise _too_new(known)
        if known >= goal and present.issuperset(parts):
            return known
    from sutram_core.backends.sql import fresh_schema  # imports this module

    while True:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            if probe is None:  # no version table, or it could not be read: make it if missing
                conn.exec_driver_sql(fresh_schema.version_table(conn.dialect.name))
            version = _recorded_version(conn)
            if version > len(MIGRATIONS):
                raise _too_new(version)
            tables = [name for (name,) in conn.execute(_PG_TABLES if conn.dialect.name == "postgresql"
                                                                     else _SQLITE_TABLES)]
            present = present_parts(tables)
            # a new database (no Sutram table yet): the parts asked for, at the goal, in this
            # one transaction, none asking what exists; tables left without their version
            # table go step by step
            if version == 0 and not any(name.startswith("sutram_") and name != schema.schema_version.name
                                        for name in tables):
                fresh_schema.run(conn, fresh_schema.statements(conn.dialect.name, parts, goal))
                _record_versions(conn, range(goal))
                return goal
            step = MIGRATIONS[version] if version < goal else None
            # a step applies to the parts it changes, unless none of them is here yet (a part
            # made later is made as the last version has it)
            applies = step is not None and (version == 0 or bool(step.parts & present))
            if version > 0:
                # the parts missing, as they were at this version: before a step, those it
                # changes (it takes their tables to exist); at the goal, those asked for
                wanted = frozenset(parts) if step is None else step.parts if applies else frozenset()
                fresh_schema.run(conn, fresh_schema.statements(conn.dialect.name, wanted - present, version))
            if step is None:
                return version
            if applies:
                step.apply(conn)
            _record_versions(conn, [version])


def _record_versions(conn: Connection, steps: Sequence[int]) -> None:
    now = datetime.now(timezone.utc).isoformat()
    conn.execute(_RECORD_VERSION, [
        {"version": at + 1, "description": MIGRATIONS[at].description, "applied_at": now} for at in steps])


def _too_new(version: int) -> SchemaVersionError:
    return SchemaVersionError(f"the database is at schema version {version} but this Sutram knows "
                              f"only up to {len(MIGRATIONS)}; upgrade the sutram package")
