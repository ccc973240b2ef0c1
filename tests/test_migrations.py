"""Schema migrations: an older database upgrades in place; a newer one is refused."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sutram_adapters.langgraph import SutramSaver
from sutram_core.backends.sql import Database, migrations
from sutram_core.backends.sql.schema import ALL_PARTS, PARTS, schema_version
from sutram_core.errors import ConfigurationError, SchemaVersionError
from tests.fixtures import schema_v1
from tests.helpers import config, put

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v1.db"


def _assert_upgraded_and_readable(saver: SutramSaver) -> None:
    t = saver.get_tuple(config(schema_v1.THREAD))
    assert t is not None
    assert t.checkpoint["channel_values"] == {"messages": ["hello from schema v1"]}
    assert [w[2] for w in t.pending_writes or []] == ["pending"]
    with saver.database.engine.connect() as conn:
        versions = [r[0] for r in conn.execute(sa.select(schema_version.c.version).order_by(schema_version.c.version))]
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("sutram_checkpoints")}
    assert versions == list(range(1, len(migrations.MIGRATIONS) + 1))
    assert "ix_sutram_checkpoints_run" in indexes
    # what version 2 added works on the upgraded data
    saver.delete_for_runs(["run-v1"])
    assert saver.get_tuple(config(schema_v1.THREAD)) is None
    stale = put(saver, "t-new", {"x": 1})
    saver.delete_thread("t-new")
    saver.put_writes(stale, [("x", 2)], "task")
    assert saver.get_tuple(config("t-new")) is None


def test_committed_v1_sqlite_file_upgrades_in_place(tmp_path: Path) -> None:
    db_file = tmp_path / "old.db"
    shutil.copy(FIXTURE, db_file)
    with sa.create_engine(f"sqlite:///{db_file}").connect() as conn:
        assert migrations.current_version(conn) == 1
    with SutramSaver.from_url(f"sqlite:///{db_file}") as saver:
        _assert_upgraded_and_readable(saver)


def test_v1_database_upgrades_in_place(db_url: str) -> None:
    db = Database(db_url)
    schema_v1.build_v1(db.engine)
    with SutramSaver(database=db) as saver:
        _assert_upgraded_and_readable(saver)
    db.close()


def test_setup_is_idempotent_and_concurrent_safe(db_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    dbs = [Database(db_url) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda d: d.setup(), dbs)) == {len(migrations.MIGRATIONS)}
    assert dbs[0].setup() == len(migrations.MIGRATIONS)
    for d in dbs:
        d.close()


@pytest.mark.parametrize("start", ["new", "version 1"])
def test_the_connection_setup_keeps_holds_no_lock_or_snapshot(start: str, tmp_path: Path) -> None:
    """setup() keeps its SQLite connection for the first statement (closing the file's last
    connection checkpoints the WAL): it must hold no transaction, or another process's
    writes would wait out the busy timeout and its WAL could never be checkpointed."""
    import sqlite3

    db_file = tmp_path / "kept.db"
    if start == "version 1":
        shutil.copy(FIXTURE, db_file)
    db = Database(f"sqlite:///{db_file}")
    db.setup()
    assert db._idle is not None and len(db._idle) == 1  # the connection is kept
    other = sqlite3.connect(db_file, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # no write lock held: at once, or "database is locked"
        other.execute("INSERT INTO sutram_thread_tombstones VALUES ('t', 'x', 'm')")
        other.execute("COMMIT")
        # no read snapshot held: a full checkpoint takes every frame of the log
        busy, log_frames, moved = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0 and log_frames == moved
    finally:
        other.close()
    with SutramSaver(database=db) as saver:
        put(saver, "after", {"x": 1})  # the kept connection works
        assert saver.get_tuple(config("after")) is not None
    db.close()


def test_database_from_a_newer_sutram_is_refused(db_url: str) -> None:
    db = Database(db_url)
    db.setup()
    with db.engine.begin() as conn:
        conn.execute(sa.insert(schema_version).values(version=99, description="future", applied_at="2030"))
    db.close()
    with pytest.raises(SchemaVersionError, match="upgrade the sutram package"):
        SutramSaver(db_url).setup()


def _schema_of(url: str) -> dict[str, object]:
    """Every table's columns, indexes and the database's own DDL text, comparable across databases."""
    db = Database(url)
    with db.engine.connect() as conn:
        ins = sa.inspect(conn)
        tables = sorted(t for t in ins.get_table_names() if t.startswith("sutram_"))
        out: dict[str, object] = {t: ([(c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                                       for c in ins.get_columns(t)],
                                      sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                             for i in ins.get_indexes(t)))
                                  for t in tables}
        if conn.dialect.name == "sqlite":
            out["ddl"] = sorted(r[0] for r in conn.execute(sa.text(
                "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master WHERE name LIKE 'sutram%' "
                "OR name LIKE 'ix_%'")))
        else:
            here = conn.execute(sa.text("SELECT current_schema()")).scalar_one() + "."
            out["ddl"] = sorted(r[0].replace(here, "") for r in conn.execute(sa.text(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                # generated columns (the keyword index's tsvector), constraints, triggers
                "UNION ALL SELECT table_name || '.' || column_name || ' ' || data_type || ' ' "
                "|| coalesce(generation_expression, '') || ' ' || coalesce(character_maximum_length::text, '') "
                "FROM information_schema.columns WHERE table_schema = current_schema() "
                "UNION ALL SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE connamespace = current_schema()::regnamespace "
                "UNION ALL SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal")))
        versions = [r[0] for r in conn.execute(sa.select(schema_version.c.version).order_by(schema_version.c.version))]
    db.close()
    out["versions"] = versions
    return out


def test_a_new_database_built_at_once_equals_one_upgraded_step_by_step(backend: str, tmp_path: Path) -> None:
    """A new database gets every migration in one transaction without asking what exists:
    the result is the schema an old database reaches one step at a time; an up-to-date one
    is then opened with one read and no lock."""
    from sqlalchemy import event

    from tests.conftest import make_url

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    at_once, stepwise = make_url(backend, tmp_path / "a"), make_url(backend, tmp_path / "b")
    a_url, b_url = next(at_once), next(stepwise)
    try:
        Database(a_url).setup()
        db = Database(b_url)
        with db.engine.connect() as conn:
            migrations.upgrade(conn, target=1)
            for step in range(2, len(migrations.MIGRATIONS) + 1):
                assert migrations.upgrade(conn, target=step) == step
        db.close()
        assert _schema_of(a_url) == _schema_of(b_url)
        reopened = Database(a_url)
        statements: list[str] = []
        event.listen(reopened.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        assert reopened.setup() == len(migrations.MIGRATIONS)
        assert len(statements) == 1 and "max(" in statements[0].lower(), statements
        reopened.close()
    finally:
        for gen in (at_once, stepwise):
            next(gen, None)


def test_the_pre_rendered_ddl_of_a_new_database_matches_the_migrations() -> None:
    """A new database runs DDL rendered ahead of time from MIGRATIONS (fresh_schema.py);
    a change to schema.py or to a migration must be followed by rendering it again."""
    from sutram_core.backends.sql import fresh_schema

    assert fresh_schema.is_current(), (
        "sutram_core/backends/sql/_fresh_ddl.py is stale: run `python -m sutram_core.backends.sql.fresh_schema`")
    for dialect in ("sqlite", "postgresql"):
        everything = fresh_schema.statements(dialect, ALL_PARTS)
        assert sorted(everything) == sorted(fresh_schema.render(dialect))
        # each statement is in exactly one part, and a part's statements keep their order
        by_part = {part: fresh_schema.statements(dialect, {part}) for part in PARTS}
        assert sum(len(sql) for sql in by_part.values()) == len(everything)
        for sql in by_part.values():
            assert sql == [s for s in fresh_schema.render(dialect) if s in sql]
        assert all(sql for sql in by_part.values())
        assert all(f"sutram_{name}" in sql[0] for name, sql in
                   [("checkpoints", by_part["checkpoints"]), ("spans", by_part["traces"]),
                    ("memories", by_part["memory"]), ("runs", by_part["runs"]),
                    ("workflow_handlers", by_part["workflows"])])


def test_a_new_database_whose_build_fails_is_left_without_a_sutram_table(backend: str, tmp_path: Path) -> None:
    """The pre-rendered DDL runs in one transaction: when a statement of it fails (a view
    already has the name of a Sutram table), setup() says so and nothing is left half made."""
    from sutram_core.errors import StorageError
    from tests.conftest import make_url

    urls = make_url(backend, tmp_path)
    url = next(urls)
    try:
        with Database(url).engine.begin() as conn:
            conn.execute(sa.text("CREATE VIEW sutram_spans AS SELECT 1 AS x"))
        db = Database(url)
        with pytest.raises(StorageError, match="sutram_spans"):
            db.setup()
        db.close()
        with Database(url).engine.connect() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t.startswith("sutram_")]
        assert tables == []
        with Database(url).engine.begin() as conn:
            conn.execute(sa.text("DROP VIEW sutram_spans"))
        with SutramSaver.from_url(url) as saver:  # once the name is free, the same database builds
            put(saver, "t1", {"x": 1})
            assert saver.get_tuple(config("t1")) is not None
    finally:
        next(urls, None)


def test_tables_left_without_their_version_table_are_upgraded_not_recreated(tmp_path: Path) -> None:
    """Version 0 with Sutram tables present (a version table dropped by hand, a copy of some
    tables): setup() goes step by step, checking what exists, instead of failing on
    'table already exists'."""
    url = f"sqlite:///{tmp_path / 'partial.db'}"
    db = Database(url)
    with db.engine.connect() as conn:
        migrations.upgrade(conn, target=3)
        with conn.begin():
            conn.execute(sa.text("DROP TABLE sutram_schema_version"))
    db.close()
    assert Database(url).setup() == len(migrations.MIGRATIONS)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    Database(fresh).setup()
    ours, reference = _schema_of(url), _schema_of(fresh)
    assert {k: v for k, v in ours.items() if k != "ddl"} == {k: v for k, v in reference.items() if k != "ddl"}


def _with_old_index(url: str, version: int, name: str, old_ddl: str) -> None:
    """Build the database at ``url`` as ``version`` left it, with index ``name`` as ``old_ddl``
    made it (before a later version made it partial)."""
    db = Database(url)
    with db.engine.connect() as conn:
        migrations.upgrade(conn, target=version)
        with conn.begin():
            conn.execute(sa.text(f"DROP INDEX {name}"))
            conn.execute(sa.text(old_ddl))
    db.close()


def test_version_12_makes_an_old_database_s_chain_index_partial_and_keeps_every_checkpoint(
        backend: str, tmp_path: Path) -> None:
    """A database as version 11 left it (the chain index over every blob row), with delta
    chains in it: the upgrade makes the index partial and every checkpoint reads back the same."""
    from langchain_core.messages import AIMessage

    from tests.conftest import make_url
    from tests.helpers import checkpoint

    urls = make_url(backend, tmp_path)
    url = next(urls)
    try:
        # the index version 1 made before it was partial
        _with_old_index(url, 11, "ix_sutram_blobs_chain", "CREATE INDEX ix_sutram_blobs_chain ON "
                        "sutram_checkpoint_blobs (tenant_id, thread_id, checkpoint_ns, channel, base_version)")
        saver = SutramSaver.from_url(url)
        saver._store.db._ready = ALL_PARTS  # write as version 11 did: no upgrade yet
        conf, messages = config("t-chain"), []
        for i in range(12):
            messages = [*messages, AIMessage(content=f"message {i}", id=f"m{i}")]
            cp = checkpoint({"messages": messages, "step": i}, {"messages": i + 1, "step": i + 1}, step=i)
            conf = saver.put(conf, cp, {"source": "loop", "step": i}, {"messages": i + 1, "step": i + 1})
        before = [(t.checkpoint["id"], t.checkpoint["channel_values"]) for t in saver.list(config("t-chain"))]
        saver._store.db.close()
        assert len(before) == 12
        assert Database(url).setup() == len(migrations.MIGRATIONS)
        with Database(url).engine.connect() as conn:
            if backend == "sqlite":
                ddl = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'ix_sutram_blobs_chain'")).scalar()
            else:
                ddl = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_sutram_blobs_chain' "
                                           "AND schemaname = current_schema()")).scalar()
            deltas = conn.execute(sa.text("SELECT count(*) FROM sutram_checkpoint_blobs WHERE kind = 'delta'")).scalar()
        assert ddl is not None and "base_version IS NOT NULL" in ddl.replace("(", "").replace(")", "")
        assert deltas and deltas > 0  # the chains the upgrade had to keep readable
        with SutramSaver.from_url(url) as fresh:
            after = [(t.checkpoint["id"], t.checkpoint["channel_values"]) for t in fresh.list(config("t-chain"))]
            assert after == before
            latest = fresh.get_tuple(config("t-chain"))
            assert latest is not None and latest.checkpoint["channel_values"]["messages"] == messages
    finally:
        next(urls, None)


def test_version_15_makes_the_run_index_partial_and_runs_are_still_deleted_by_id(
        backend: str, tmp_path: Path) -> None:
    """A database as version 14 left it (the run index over every checkpoint, run id or not):
    the upgrade keeps only rows with a run id in it, and deleting by run id finds them."""
    from tests.conftest import make_url
    from tests.helpers import checkpoint

    urls = make_url(backend, tmp_path)
    url = next(urls)
    try:
        # the index as version 2 made it
        _with_old_index(url, 14, "ix_sutram_checkpoints_run",
                        "CREATE INDEX ix_sutram_checkpoints_run ON sutram_checkpoints (tenant_id, run_id)")
        saver = SutramSaver.from_url(url)
        saver._store.db._ready = ALL_PARTS  # write as version 14 did: no upgrade yet
        for thread, run in (("t-a", "run-a"), ("t-b", "run-b"), ("t-none", None)):
            conf = config(thread)
            for i in range(3):
                cp = checkpoint({"step": i}, {"step": i + 1}, step=i)
                md = {"source": "loop", "step": i, **({"run_id": run} if run else {})}
                conf = saver.put(conf, cp, md, {"step": i + 1})
        saver._store.db.close()
        assert Database(url).setup() == len(migrations.MIGRATIONS)
        with Database(url).engine.connect() as conn:
            if backend == "sqlite":
                ddl = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'ix_sutram_checkpoints_run'")
                                   ).scalar()
                plan = conn.execute(sa.text("EXPLAIN QUERY PLAN SELECT thread_id FROM sutram_checkpoints "
                                            "WHERE tenant_id = 'default' AND run_id IN ('run-a', 'x')")).all()
                assert "ix_sutram_checkpoints_run" in str(plan)
            else:
                ddl = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                           "'ix_sutram_checkpoints_run' AND schemaname = current_schema()")).scalar()
        assert ddl is not None and "run_id IS NOT NULL" in ddl.replace("(", "").replace(")", "")
        with SutramSaver.from_url(url) as fresh:
            fresh.delete_for_runs(["run-a"])
            assert fresh.get_tuple(config("t-a")) is None
            assert len(list(fresh.list(config("t-b")))) == 3
            assert len(list(fresh.list(config("t-none")))) == 3
    finally:
        next(urls, None)


@pytest.mark.postgres
def test_sutram_tables_of_a_later_schema_on_the_search_path_are_refused_not_shared(tmp_path: Path) -> None:
    """search_path "app, other, public" with Sutram's tables only in "other" (another
    deployment's): unqualified names would read other's tables while new tables went to
    "app". setup() refuses and says which schema to put first; with "other" first, or with
    "app" holding tables of its own, each deployment keeps to its own tables."""
    from urllib.parse import quote

    from sutram_core.errors import ConfigurationError
    from tests.conftest import make_url

    app_urls, other_urls = make_url("postgres", tmp_path), make_url("postgres", tmp_path)
    app_url, other_url = next(app_urls), next(other_urls)
    try:
        app, other = (u.split("csearch_path%3D")[1].split("%2C")[0] for u in (app_url, other_url))
        with SutramSaver.from_url(other_url) as theirs:
            put(theirs, "t-theirs", {"secret": "other deployment"})
        base = app_url.split("?options=")[0]
        both = f"{base}?options={quote(f'-csearch_path={app},{other},public')}"
        with pytest.raises(ConfigurationError, match=f"schema '{other}'.*csearch_path%3D{other}%2Cpublic"):
            SutramSaver(both).setup()
        # a name PostgreSQL would fold to lower case unquoted: the advice keeps it quoted, and works
        import psycopg

        mixed = f'Mixed-{other}'
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{mixed}"')
        try:
            quoted = '"' + mixed + '"'
            with SutramSaver.from_url(f"{base}?options={quote(f'-csearch_path={quoted},public')}") as theirs:
                put(theirs, "t-mixed", {"x": 1})
            with pytest.raises(ConfigurationError) as refused:
                SutramSaver(f"{base}?options={quote(f'-csearch_path={app},{quoted},public')}").setup()
            advice = str(refused.value).split("for example ?options=")[1].split(" ")[0]
            with SutramSaver.from_url(f"{base}?options={advice}") as following:
                assert following.get_tuple(config("t-mixed")) is not None
        finally:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{mixed}" CASCADE')
        with SutramSaver.from_url(f"{base}?options={quote(f'-csearch_path={other},{app},public')}") as first:
            assert first.get_tuple(config("t-theirs")) is not None  # other first: its tables, on purpose
        with SutramSaver.from_url(app_url) as ours:  # app alone: tables of its own
            put(ours, "t-ours", {"x": 1})
        with SutramSaver.from_url(both) as mine:  # now app has them: app's, and only app's
            assert mine.get_tuple(config("t-theirs")) is None
            assert mine.get_tuple(config("t-ours")) is not None
    finally:
        next(app_urls, None)
        next(other_urls, None)



# -- parts of the schema made on first use (version 14) ----------------------------------------

def _sutram_tables(url: str) -> set[str]:
    db = Database(url)
    with db.engine.connect() as conn:
        tables = {t for t in sa.inspect(conn).get_table_names() if t.startswith("sutram_")}
    db.close()
    return tables


def _tables_of(*parts: str) -> set[str]:
    return {schema_version.name} | {t.name for part in parts for t in PARTS[part]}


def test_a_saver_makes_only_the_checkpoint_tables_and_each_other_part_comes_on_first_use(
        backend: str, tmp_path: Path) -> None:
    """A saver alone makes what LangGraph's savers make (its new-database cost was twice
    theirs with every feature's tables); another store on the same database makes the rest
    when first used, and the database ends as one made all at once."""
    from sqlalchemy import event

    from sutram_core.memory import MemoryStore
    from sutram_core.traces import open_trace_store
    from tests.conftest import make_url

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    lazy, whole = make_url(backend, tmp_path / "a"), make_url(backend, tmp_path / "b")
    url, reference = next(lazy), next(whole)
    try:
        with SutramSaver.from_url(url) as saver:
            put(saver, "t1", {"x": 1})
        made = _sutram_tables(url)
        assert made - {"sutram_memories_fts"} - {t for t in made if t.startswith("sutram_memories_fts_")} \
            == _tables_of("checkpoints")
        reopened = Database(url)  # a saver on it reads one row of versions and parts
        statements: list[str] = []
        event.listen(reopened.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with SutramSaver(database=reopened) as saver:
            assert saver.get_tuple(config("t1")) is not None
        assert sum("max(" in s.lower() for s in statements) == 1
        assert not any(s.lstrip().upper().startswith(("CREATE", "ALTER")) for s in statements), statements
        reopened.close()
        with MemoryStore.from_url(url, tenant="acme", embedder=False) as mem:  # the other parts
            mem.put(("u",), "tea", {"text": "likes green tea"})
            assert [h.record.key for h in mem.search("green tea", mode="keyword")] == ["tea"]
        assert _tables_of(*PARTS) <= _sutram_tables(url)
        with open_trace_store(url) as traces:
            assert traces.runs("acme") == []
        Database(reference).setup()
        assert _schema_of(url) == _schema_of(reference)
        with SutramSaver.from_url(url) as saver:  # what the saver wrote first is still there
            got = saver.get_tuple(config("t1"))
            assert got is not None and got.checkpoint["channel_values"] == {"x": 1}
    finally:
        for gen in (lazy, whole):
            next(gen, None)


@contextlib.contextmanager
def _partial_and_whole(backend: str, tmp_path: Path, version: int, parts: set[str]) -> Iterator[tuple[str, str]]:
    """The URLs of a database at ``version`` holding only ``parts``, and of an empty one."""
    from tests.conftest import make_url

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    partial, whole = make_url(backend, tmp_path / "a"), make_url(backend, tmp_path / "b")
    url, reference = next(partial), next(whole)
    try:
        db = Database(url)
        with db.engine.connect() as conn:
            assert migrations.upgrade(conn, target=version, parts=parts) == version
        db.close()
        yield url, reference
    finally:
        for gen in (partial, whole):
            next(gen, None)


@pytest.mark.parametrize("version", [3, 11, len(migrations.MIGRATIONS) - 1])
def test_a_database_lacking_parts_gets_them_as_they_were_before_it_upgrades(
        backend: str, tmp_path: Path, version: int) -> None:
    """A step takes every table to exist: a database at an older version that lacks parts
    gets them made as they were at its version first, then goes step by step, and ends as
    a database made at once."""
    with _partial_and_whole(backend, tmp_path, version, {"checkpoints"}) as (url, reference):
        assert _sutram_tables(url) == _tables_of("checkpoints")
        assert Database(url).setup() == len(migrations.MIGRATIONS)
        Database(reference).setup()
        assert _schema_of(url) == _schema_of(reference)


@pytest.mark.parametrize("part", ["checkpoints", "traces"])
def test_a_step_makes_or_needs_only_the_parts_it_changes(backend: str, tmp_path: Path, part: str) -> None:
    """Version 15 changes the checkpoint tables only: a version-14 database of one part
    upgrades without the other parts being made (a saver-only database stays one), a step
    whose part is not there is skipped, and the part made later is as the last version has it."""
    with _partial_and_whole(backend, tmp_path, 14, {part}) as (url, reference):
        assert Database(url).setup(frozenset({part})) == len(migrations.MIGRATIONS)
        made = _sutram_tables(url)
        assert {t for t in made if not t.startswith("sutram_memories_fts")} == _tables_of(part)
        assert Database(url).setup() == len(migrations.MIGRATIONS)
        Database(reference).setup()
        assert _schema_of(url) == _schema_of(reference)


def test_parts_made_at_once_by_several_processes_are_each_made_once(backend: str, tmp_path: Path) -> None:
    """Stores of different features opening a new database at the same moment: each part is
    made once (the migration lock), none fails on a table another made, and every store works."""
    import multiprocessing

    from tests.conftest import make_url

    urls = make_url(backend, tmp_path)
    url = next(urls)
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(4) as pool:
            assert sorted(pool.map(_use_part, [(url, part) for part in
                                               ("checkpoints", "memory", "traces", "checkpoints")])) \
                == ["checkpoints", "checkpoints", "memory", "traces"]
        assert _tables_of("checkpoints", "memory", "traces") <= _sutram_tables(url)
        versions = _schema_of(url)["versions"]
        assert versions == list(range(1, len(migrations.MIGRATIONS) + 1))
    finally:
        next(urls, None)


def _use_part(job: tuple[str, str]) -> str:
    url, part = job
    if part == "checkpoints":
        with SutramSaver.from_url(url) as saver:
            put(saver, f"t-{os.getpid()}", {"x": 1})
            assert saver.get_tuple(config(f"t-{os.getpid()}")) is not None
    elif part == "memory":
        from sutram_core.memory import MemoryStore

        with MemoryStore.from_url(url, tenant="acme", embedder=False) as mem:
            mem.put(("u",), "tea", {"text": "likes green tea"})
    else:
        from sutram_core.traces import open_trace_store

        with open_trace_store(url) as traces:
            traces.runs("acme")
    return part


def test_a_read_only_postgresql_session_lacking_parts_is_told_how_to_make_them(tmp_path: Path) -> None:
    """On a replica or under default_transaction_read_only, a store that needs a part a saver
    did not make cannot make it: a typed error says where to open the database once; after
    that the read-only session reads it."""
    from sutram_core.memory import MemoryStore
    from sutram_core.traces import open_trace_store
    from tests.conftest import make_url

    urls = make_url("postgresql", tmp_path)
    url = next(urls)
    try:
        with SutramSaver.from_url(url) as saver:
            put(saver, "t1", {"x": 1})
        read_only = url + "%20-cdefault_transaction_read_only%3Don"
        with SutramSaver.from_url(read_only) as saver:  # the saver's own part is there
            assert saver.get_tuple(config("t1")) is not None
        with pytest.raises(SchemaVersionError, match=r"cannot create them.*sutram runs --url"):
            MemoryStore.from_url(read_only, tenant="acme", embedder=False).list(("u",))
        with pytest.raises(ConfigurationError, match=r"no part of Sutram.s schema is named"):
            Database(url).setup(frozenset({"checkpoint"}))
        Database(url).setup()
        with MemoryStore.from_url(read_only, tenant="acme", embedder=False) as mem:
            assert mem.list(("u",)) == []
        with open_trace_store(read_only) as traces:
            assert traces.runs("acme") == []
    finally:
        next(urls, None)
