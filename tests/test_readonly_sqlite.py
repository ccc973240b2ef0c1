"""A SQLite database on a read-only filesystem can be read: ``?mode=ro``, ``?immutable=1``,
and the read-only CLI commands falling back to them by themselves.

The real case is a read-only mount: each test that needs one mounts a tmpfs and remounts
it read-only (tests run as root, which ignores permission bits), and skips with the reason
where mounting is not permitted. Permission bits (a 0555 folder, a 0444 file) are tested by
running the CLI as the unprivileged user ``nobody``. Read-only opening is a SQLite file
feature: a PostgreSQL database is made read-only with a role, so these tests use SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from sqlalchemy import text
from typing_extensions import TypedDict

from sutram_adapters.cli import main
from sutram_adapters.langchain import SutramCallbackHandler
from sutram_adapters.langgraph import SutramSaver, SutramStore
from sutram_core.backends.sql import migrations
from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.config import parse_url, read_only_if_unwritable
from sutram_core.errors import ConfigurationError, SchemaVersionError, StorageError
from sutram_core.memory import MemoryStore
from sutram_core.traces import Tracer, open_trace_store
from tests.fake_models import EchoChatModel
from tests.tracing_graphs import fan_out_graph

REPO = Path(__file__).resolve().parent.parent
NS = ("users", "u1")


class _State(TypedDict):
    n: int


def _graph() -> Any:
    g = StateGraph(_State)
    g.add_node("inc", lambda s: {"n": s["n"] + 1})
    g.add_edge(START, "inc")
    g.add_edge("inc", END)
    return g


def _populate(url: str) -> None:
    with SutramSaver.from_url(url) as saver:
        _graph().compile(checkpointer=saver).invoke({"n": 1}, {"configurable": {"thread_id": "t1"}})
    with MemoryStore.from_url(url, tenant="acme", embedder=False) as mem:
        mem.put(NS, "tea", {"text": "prefers green tea"})
        mem.put(NS, "bike", {"text": "rides a red bike"}, ttl_seconds=3600)
    with Tracer.from_url(url) as tracer:
        handler = SutramCallbackHandler(tracer=tracer, tenant="acme")
        asyncio.run(fan_out_graph(EchoChatModel()).compile().ainvoke(
            {"topics": ["a"], "notes": []}, {"callbacks": [handler], "metadata": {"thread_id": "t-7"}}))


def _checkpointed(path: Path) -> None:
    """What an operator does before copying: move the -wal into the file and empty it."""
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A populated database (checkpoints, memories, a traced run with its audit chain), checkpointed."""
    path = tmp_path_factory.mktemp("source") / "sutram.db"
    _populate(f"sqlite:///{path}")
    _checkpointed(path)
    return path


@pytest.fixture
def ro_mount(tmp_path: Path) -> Iterator[Path]:
    """A folder on a fresh tmpfs, made read-only by :func:`_seal` once the test's files are
    in it; skipped with the reason where mounting is not permitted."""
    folder = tmp_path / "ro"
    folder.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip() or made.returncode}); "
                    "the read-only filesystem case needs mount permission")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _seal(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    with pytest.raises(OSError):
        (folder / "probe").write_text("x")


@pytest.fixture
def on_ro_mount(source: Path, ro_mount: Path) -> Path:
    """A copy of the populated database (file only, after a checkpoint) on a read-only filesystem."""
    shutil.copy(source, ro_mount / "sutram.db")
    _seal(ro_mount)
    return ro_mount / "sutram.db"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- URLs --------------------------------------------------------------------------------------

def test_mode_ro_and_immutable_urls_parse_as_read_only() -> None:
    assert parse_url("sqlite:////x/db.sqlite?mode=ro").read_only
    assert parse_url("sqlite:////x/db.sqlite?immutable=1&synchronous=FULL").read_only
    assert not parse_url("sqlite:////x/db.sqlite").read_only
    with pytest.raises(ConfigurationError, match="mode=ro"):
        parse_url("sqlite:////x/db.sqlite?mode=rwc")


# -- reading ---------------------------------------------------------------------------------------

def _reads_everything(url: str) -> None:
    config = {"configurable": {"thread_id": "t1"}}
    with SutramSaver.from_url(url) as saver:
        latest = saver.get_tuple(config)
        assert latest is not None and latest.checkpoint["channel_values"]["n"] == 2
        assert len(list(saver.list(config))) >= 2
    with MemoryStore.from_url(url, tenant="acme", embedder=False) as mem:
        assert [h.record.key for h in mem.search("green tea", mode="keyword")] == ["tea"]
        assert mem.get(NS, "bike", refresh_ttl=True) is not None  # no TTL refresh is written
        assert sorted(r.key for r in mem.list(NS)) == ["bike", "tea"]
    with SutramStore.from_url(url, tenant="acme", index=False) as store:
        item = store.get(NS, "bike")  # LangGraph refreshes TTLs on read by default
        assert item is not None and item.value["text"] == "rides a red bike"
        assert [i.key for i in store.search(NS, query="tea")][:1] == ["tea"]
    with open_trace_store(url) as traces:
        runs = traces.runs("acme")
        assert [r.name for r in runs] == ["LangGraph"]
        assert len(traces.run_spans("acme", runs[0].run_id)) == 12
        assert traces.verify_audit("acme").ok


def test_mode_ro_reads_a_database_on_a_read_only_filesystem(on_ro_mount: Path) -> None:
    _reads_everything(f"sqlite:///{on_ro_mount}?mode=ro")


def test_immutable_reads_a_database_on_a_read_only_filesystem(on_ro_mount: Path) -> None:
    _reads_everything(f"sqlite:///{on_ro_mount}?immutable=1")


def test_a_writable_opening_of_a_read_only_filesystem_fails_as_reported(on_ro_mount: Path) -> None:
    # the failure the read-only opening exists for (and the CLI's fallback avoids)
    with pytest.raises(StorageError, match="unable to open database file"), \
            SutramSaver.from_url(f"sqlite:///{on_ro_mount}") as saver:
        saver.get_tuple({"configurable": {"thread_id": "t1"}})


def test_mode_ro_reads_a_live_database_and_changes_nothing_in_it(source: Path, tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    shutil.copy(source, live)
    before = _digest(live)
    _reads_everything(f"sqlite:///{live}?mode=ro")
    assert _digest(live) == before


def test_mode_ro_on_a_read_only_copy_with_its_wal_and_shm_sees_the_latest_commits(
        source: Path, tmp_path: Path, ro_mount: Path) -> None:
    live = tmp_path / "live.db"
    shutil.copy(source, live)
    url = f"sqlite:///{live}"
    with MemoryStore.from_url(url, tenant="acme", embedder=False) as mem:
        held = sqlite3.connect(live)  # an open reader keeps the last commit in the -wal
        held.execute("PRAGMA wal_autocheckpoint=0")
        held.execute("SELECT 1 FROM sutram_memories LIMIT 1").fetchall()
        mem.put(NS, "late", {"text": "written after the checkpoint"})
        for suffix in ("", "-wal", "-shm"):
            shutil.copy(f"{live}{suffix}", ro_mount / f"sutram.db{suffix}")
        held.close()
    assert (ro_mount / "sutram.db-wal").stat().st_size > 32
    _seal(ro_mount)
    with MemoryStore.from_url(f"sqlite:///{ro_mount / 'sutram.db'}?mode=ro", tenant="acme", embedder=False) as mem:
        assert mem.get(NS, "late") is not None


@pytest.mark.parametrize("how", ["mode=ro", "immutable=1"])
def test_a_database_only_a_saver_wrote_reads_its_other_parts_as_empty(tmp_path: Path, how: str) -> None:
    """A saver alone makes only the checkpoint tables. Opened read-only, such a database
    still answers every reader: no memories, no runs, no audit entries, the checkpoints as
    written; and nothing is written to its file."""
    path = tmp_path / "saver-only.db"
    with SutramSaver.from_url(f"sqlite:///{path}") as saver:
        _graph().compile(checkpointer=saver).invoke({"n": 1}, {"configurable": {"thread_id": "t1"}})
    _checkpointed(path)
    with sqlite3.connect(path) as conn:
        assert not [r for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'sutram_spans%' "
                                            "OR name LIKE 'sutram_memories%' OR name LIKE 'sutram_runs%'")]
    before = _digest(path)
    url = f"sqlite:///{path}?{how}"
    with SutramSaver.from_url(url) as saver:
        latest = saver.get_tuple({"configurable": {"thread_id": "t1"}})
        assert latest is not None and latest.checkpoint["channel_values"]["n"] == 2
    with MemoryStore.from_url(url, tenant="acme", embedder=False) as mem:
        assert mem.search("green tea", mode="keyword") == []
        assert mem.list(NS) == [] and mem.get(NS, "tea") is None
        with pytest.raises(StorageError, match="read-only"):
            mem.put(NS, "tea", {"text": "prefers green tea"})
    with SutramStore.from_url(url, tenant="acme", index=False) as store:
        assert store.search(NS, query="tea") == []
    with open_trace_store(url) as traces:
        assert traces.runs("acme") == []
        assert traces.verify_audit("acme").ok
    db = Database(url)  # each new connection gets the stand-ins, not only the first
    db.setup()
    conns = [db.engine.connect() for _ in range(3)]
    try:
        for conn in conns:
            assert conn.execute(text("SELECT count(*) FROM sutram_runs")).scalar() == 0
    finally:
        for conn in conns:
            conn.close()
        db.close()
    assert main(["runs", "--url", url, "--tenant", "acme", "--json"]) == 0
    assert main(["history", "t1", "--url", url]) == 0
    assert _digest(path) == before
    assert not Path(f"{path}-journal").exists()


def test_a_read_only_reader_sees_a_part_made_after_it_opened(tmp_path: Path) -> None:
    """The stand-ins of missing parts never hide the real tables: a reader left open while a
    writer makes the part reads what the writer wrote, on the connections it already had,
    as does a reader opened afterwards."""
    path = tmp_path / "grows.db"
    with SutramSaver.from_url(f"sqlite:///{path}") as saver:
        _graph().compile(checkpointer=saver).invoke({"n": 1}, {"configurable": {"thread_id": "t1"}})
    reader = MemoryStore.from_url(f"sqlite:///{path}?mode=ro", tenant="acme", embedder=False)
    with contextlib.ExitStack() as stack:
        stack.callback(reader.close)
        traces = stack.enter_context(open_trace_store(f"sqlite:///{path}?mode=ro"))
        assert reader.list(NS) == [] and traces.runs("acme") == []
        with MemoryStore.from_url(f"sqlite:///{path}", tenant="acme", embedder=False) as writer:
            writer.put(NS, "tea", {"text": "prefers green tea"})
        with Tracer.from_url(f"sqlite:///{path}") as tracer:
            handler = SutramCallbackHandler(tracer=tracer, tenant="acme")
            asyncio.run(fan_out_graph(EchoChatModel()).compile().ainvoke(
                {"topics": ["a"], "notes": []}, {"callbacks": [handler], "metadata": {"thread_id": "t-7"}}))
        for _ in range(2):  # the readers left open, then new ones
            assert [r.key for r in reader.list(NS)] == ["tea"]
            assert [h.record.key for h in reader.search("green tea", mode="keyword")] == ["tea"]
            assert [r.name for r in traces.runs("acme")] == ["LangGraph"]
            reader = stack.enter_context(MemoryStore.from_url(f"sqlite:///{path}?mode=ro", tenant="acme",
                                                              embedder=False))
            traces = stack.enter_context(open_trace_store(f"sqlite:///{path}?mode=ro"))


def test_a_wal_with_commits_but_no_shm_is_refused_rather_than_read_stale(
        source: Path, tmp_path: Path, ro_mount: Path) -> None:
    live = tmp_path / "live.db"
    shutil.copy(source, live)
    with MemoryStore.from_url(f"sqlite:///{live}", tenant="acme", embedder=False) as mem:
        held = sqlite3.connect(live)
        held.execute("SELECT 1 FROM sutram_memories LIMIT 1").fetchall()
        mem.put(NS, "late", {"text": "written after the checkpoint"})
        shutil.copy(live, ro_mount / "sutram.db")
        shutil.copy(f"{live}-wal", ro_mount / "sutram.db-wal")
        held.close()
    _seal(ro_mount)
    with pytest.raises(StorageError, match=r"wal_checkpoint\(TRUNCATE\)"), \
            MemoryStore.from_url(f"sqlite:///{ro_mount / 'sutram.db'}?mode=ro", tenant="acme",
                                 embedder=False) as mem:
        mem.get(NS, "late")


# -- writing is refused ----------------------------------------------------------------------------

def test_every_write_on_a_read_only_database_is_a_storage_error_saying_so(on_ro_mount: Path) -> None:
    url = f"sqlite:///{on_ro_mount}?mode=ro"
    read_only = r"opened read-only \(mode=ro\), so it cannot be written"
    with SutramSaver.from_url(url) as saver:
        with pytest.raises(StorageError, match=read_only):
            _graph().compile(checkpointer=saver).invoke({"n": 1}, {"configurable": {"thread_id": "t2"}})
        latest = saver.get_tuple({"configurable": {"thread_id": "t1"}})
        assert latest is not None
        with pytest.raises(StorageError, match=read_only):
            saver.put_writes(latest.config, [("n", 5)], "task-1")
        with pytest.raises(StorageError, match=read_only):
            saver.delete_thread("t1")
    with MemoryStore.from_url(url, tenant="acme", embedder=False) as mem:
        for write in (lambda: mem.put(NS, "new", {"text": "x"}), lambda: mem.delete(NS, "tea"),
                      lambda: mem.set_metadata([(NS, "tea")], {"a": 1}), mem.sweep_expired):
            with pytest.raises(StorageError, match=read_only):
                write()
    with SutramStore.from_url(url, tenant="acme", index=False) as store, \
            pytest.raises(StorageError, match=read_only):
        store.put(NS, "new", {"text": "x"})
    ran: list[str] = []

    def plan() -> Plan[None]:
        ran.append("started")
        yield Step(text("SELECT 1"))

    db = Database(url)
    try:
        with pytest.raises(StorageError, match=read_only):
            db.run(plan())
        assert ran == []  # refused before any statement
        assert db.run(plan(), write=False) is None and ran == ["started"]
    finally:
        db.close()


# -- what a read-only opening cannot fix ----------------------------------------------------------

def test_an_older_schema_opened_read_only_is_refused_saying_how_to_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Database(f"sqlite:///{path}")
    with old.engine.connect() as conn:
        migrations.upgrade(conn, target=3)
    old.close()
    before = _digest(path)
    with pytest.raises(SchemaVersionError, match=r"schema version 3, older .*cannot be upgraded: open it once "
                                                 r"without \?mode=ro"), \
            SutramSaver.from_url(f"sqlite:///{path}?mode=ro") as saver:
        saver.get_tuple({"configurable": {"thread_id": "t1"}})
    assert _digest(path) == before


def test_a_missing_file_opened_read_only_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "none.db"
    with pytest.raises(StorageError, match=r"no SQLite database at .*creates nothing"), \
            MemoryStore.from_url(f"sqlite:///{path}?mode=ro", tenant="acme", embedder=False) as mem:
        mem.get(NS, "tea")
    assert not path.parent.exists()


# -- the read-only CLI commands fall back by themselves ------------------------------------------

def test_read_only_cli_commands_read_a_database_on_a_read_only_filesystem(on_ro_mount: Path, capsys: Any) -> None:
    url = f"sqlite:///{on_ro_mount}"
    assert read_only_if_unwritable(url) == f"{url}?mode=ro"
    assert main(["runs", "--url", url, "--tenant", "acme", "--json"]) == 0
    out = capsys.readouterr()
    runs = json.loads(out.out)
    assert [r["name"] for r in runs] == ["LangGraph"] and "read-only" in out.err
    assert main(["trace", runs[0]["run_id"], "--url", url, "--tenant", "acme", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 12
    assert main(["memory", "list", "--url", url, "--tenant", "acme", "--json"]) == 0
    assert {m["key"] for m in json.loads(capsys.readouterr().out)} == {"tea", "bike"}
    assert main(["memory", "search", "green tea", "--url", url, "--tenant", "acme", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["key"] == "tea"
    assert main(["audit", "verify", "--url", url]) == 0
    assert "tenant acme: ok" in capsys.readouterr().out
    assert main(["history", "t1", "--url", url]) == 0
    assert "checkpoints of t1" in capsys.readouterr().out


def test_a_writable_database_is_not_opened_read_only_by_the_cli(source: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    shutil.copy(source, tmp_path / "w.db")
    assert read_only_if_unwritable(url) == url
    assert read_only_if_unwritable(f"{url}?synchronous=FULL") == f"{url}?synchronous=FULL"
    assert read_only_if_unwritable("postgresql://u@localhost/db") == "postgresql://u@localhost/db"


def _bound_by_permission_bits() -> list[str]:
    """A command prefix under which permission bits bind: none for a normal user; for root,
    ``setpriv`` without the capabilities that override them (skips where it is missing)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits would not bind")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, "--bounding-set", drop, "--inh-caps", drop, "--"]


def test_read_only_cli_commands_read_a_file_in_a_folder_others_cannot_write(source: Path) -> None:
    # permission bits bind only without root's overriding capabilities (see above)
    prefix = _bound_by_permission_bits()
    outer = Path(tempfile.mkdtemp(prefix="sutram-ro-"))
    try:
        outer.chmod(0o755)
        folder = outer / "locked"
        folder.mkdir()
        shutil.copy(source, folder / "sutram.db")
        (folder / "sutram.db").chmod(0o444)
        folder.chmod(0o555)
        url = f"sqlite:///{folder / 'sutram.db'}"
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("SUTRAM_URL", None)
        for argv in (["runs", "--tenant", "acme", "--json"], ["memory", "list", "--tenant", "acme", "--json"],
                     ["audit", "verify"]):
            done = subprocess.run([*prefix, sys.executable, "-m", "sutram_adapters.cli", *argv, "--url", url],
                                  cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert "read-only" in done.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["sutram.db"]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(outer)
