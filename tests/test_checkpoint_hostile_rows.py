"""Stored rows are data, never code; bad rows and bad values get typed errors.

Someone who can write the database must not be able to run code in every worker that
reads it (a msgpack extension naming ``os.system`` or ``subprocess.Popen``); a corrupt row
names itself and does not hide the rest of a tenant's history; a value that cannot be
stored is refused with the channel named, and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import ormsgpack
import pytest
import sqlalchemy as sa
from langchain_core.messages import AIMessage, HumanMessage

from sutram_adapters.langgraph import SutramSaver
from sutram_core.backends.sql.schema import checkpoint_blobs, checkpoints
from sutram_core.errors import CheckpointDecodeError, InvalidCheckpointError
from tests.helpers import checkpoint, config, put


def _ext(code: int, *fields: Any) -> bytes:
    return ormsgpack.packb({"v": ormsgpack.Ext(code, ormsgpack.packb(fields))})


def _hostile(marker: Path) -> dict[str, bytes]:
    touch = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    shell = f"{sys.executable} -c \"open({str(marker)!r}, 'w').close()\""
    return {
        "function call (os.system)": _ext(0, "os", "system", shell),
        "constructor (subprocess.Popen)": _ext(1, "subprocess", "Popen", [touch]),
        "keyword constructor (subprocess.run)": _ext(2, "subprocess", "run", {"args": touch}),
        "method call (Popen.__call__)": _ext(3, "subprocess", "Popen", touch, "__call__"),
        "method call on a safe type": _ext(3, "builtins", "set", touch, "__call__"),
        "nested in a message": ormsgpack.packb(
            {"m": [ormsgpack.Ext(2, ormsgpack.packb(("subprocess", "Popen", {"args": touch})))]}
        ),
    }


def _overwrite_blob(saver: SutramSaver, channel: str, data: bytes, type_: str = "msgpack") -> None:
    with saver.database.engine.begin() as conn:
        conn.execute(sa.update(checkpoint_blobs).where(checkpoint_blobs.c.channel == channel)
                     .values(type=type_, data=data, kind="full"))


@pytest.mark.parametrize("attack", list(_hostile(Path("x")).keys()))
def test_stored_row_cannot_run_code_on_read(db_url: str, tmp_path: Path, attack: str) -> None:
    marker = tmp_path / "pwned"
    with SutramSaver.from_url(db_url) as saver:
        put(saver, "t-hostile", {"state": {"x": 1}})
        _overwrite_blob(saver, "state", _hostile(marker)[attack])
        with pytest.raises(CheckpointDecodeError) as err:
            saver.get_tuple(config("t-hostile"))
        assert err.value.channel == "state"
        assert list(saver.list(config("t-hostile"))) == []
    assert not marker.exists(), f"{attack}: a stored row ran code"


def test_safe_types_and_allowed_classes_still_round_trip(db_url: str) -> None:
    from tests.state_types import Plan

    value = {
        "messages": [HumanMessage("hi"), AIMessage("hello", tool_calls=[])],
        "when": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc),
        "tags": {"a", "b"},
        "plan": Plan(steps=["look", "act"]),
    }
    with SutramSaver.from_url(db_url, allowed_types=[Plan]) as saver:
        put(saver, "t-ok", {"v": value})
        got = saver.get_tuple(config("t-ok")).checkpoint["channel_values"]["v"]  # type: ignore[union-attr]
    assert got == value


def test_unlisted_class_is_refused_with_the_way_to_allow_it(db_url: str) -> None:
    from tests.state_types import Plan

    with SutramSaver.from_url(db_url) as saver:
        put(saver, "t-plan", {"plan": Plan(steps=["a"])})
        with pytest.raises(CheckpointDecodeError, match=r"allowed_types=\[\('tests.state_types', 'Plan'\)\]"):
            saver.get_tuple(config("t-plan"))


def test_corrupt_checkpoint_row_names_itself_and_does_not_poison_list(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        good = put(saver, "t-good", {"x": 1})
        bad = put(saver, "t-bad", {"x": 2})
        bad_id = bad["configurable"]["checkpoint_id"]
        with saver.database.engine.begin() as conn:
            conn.execute(sa.update(checkpoints).where(checkpoints.c.thread_id == "t-bad")
                         .values(checkpoint=b"\x78\x01not zlib at all"))
        with pytest.raises(CheckpointDecodeError) as err:
            saver.get_tuple(config("t-bad"))
        assert (err.value.thread_id, err.value.checkpoint_id) == ("t-bad", bad_id)
        listed = [t.config["configurable"]["checkpoint_id"] for t in saver.list(None)]
        assert listed == [good["configurable"]["checkpoint_id"]]
        assert saver.undecodable == 1


async def test_corrupt_row_does_not_poison_alist(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        put(saver, "t-good", {"x": [1]})  # lists: stored as rows (scalars travel in the checkpoint's row)
        put(saver, "t-bad", {"x": [2]})
        _overwrite_blob(saver, "x", b"\xc1", "msgpack")  # 0xc1 is never valid msgpack
        listed = [t async for t in saver.alist(None)]
        assert listed == [] and saver.undecodable == 2


_cyclic: list[Any] = []
_cyclic.append(_cyclic)


def _deep(n: int) -> list[Any]:
    root: list[Any] = []
    cur = root
    for _ in range(n):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    return root


@pytest.mark.parametrize(("value", "reason"), [
    (object(), "not msgpack serializable"),
    (2**70, "64 bits"),
    (-(2**70), "64 bits"),
    (_deep(400), "nested too deeply"),
    (_cyclic, "refers to itself"),
], ids=["object", "big-int", "big-negative-int", "deep", "cyclic"])
def test_value_that_cannot_be_stored_names_the_channel_and_writes_nothing(db_url: str, value: Any, reason: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        first = put(saver, "t-val", {"ok": 1})
        cp = checkpoint({"ok": 1, "bad": value}, step=1)
        with pytest.raises(InvalidCheckpointError, match=rf"'bad'.*{reason}"):
            saver.put(config("t-val", checkpoint_id=first["configurable"]["checkpoint_id"]), cp,
                      {"source": "loop", "step": 1}, {"bad": 2})
        with pytest.raises(InvalidCheckpointError, match=rf"'bad'.*{reason}"):
            saver.put_writes(first, [("fine", 1), ("bad", value)], "task-1")
        latest = saver.get_tuple(config("t-val"))
        assert latest is not None
        assert latest.config["configurable"]["checkpoint_id"] == first["configurable"]["checkpoint_id"]
        assert latest.pending_writes == []


def test_durable_runner_allows_its_graphs_own_schema_types(db_url: str) -> None:
    from langgraph.graph import END, START, StateGraph

    from sutram_adapters.langgraph import durable
    from tests.state_types import Plan, PlanState

    def extend(state: PlanState) -> PlanState:
        return {"plan": Plan(steps=[*state["plan"].steps, "act"])}

    builder = StateGraph(PlanState)
    builder.add_node("extend", extend)
    builder.add_edge(START, "extend")
    builder.add_edge("extend", END)
    with durable(builder.compile(), url=db_url) as runner:
        runner.invoke({"plan": Plan(steps=["look"])}, thread_id="t-plan")
    with durable(builder.compile(), url=db_url) as fresh:  # another process would do the same
        state = fresh.graph.get_state({"configurable": {"thread_id": "t-plan"}})
    assert state.values["plan"] == Plan(steps=["look", "act"])


@pytest.mark.parametrize("stored", ["as rows", "in the checkpoint row"])
def test_odd_channel_names_and_versions_read_back_by_get_tuple_and_list(db_url: str, backend: str, stored: str) -> None:
    # get_tuple joins a checkpoint to its values through the database's JSON reading of
    # channel_versions; a name or version that reads differently there must still be found.
    # Lists are stored as rows of their own, short strings in the checkpoint's row.
    names = ["plain", "quote\"d", "back\\slash", "uni\u00e9\u4e2d", "emoji\U0001F600", "\\u0041", "tab\tnew\nline",
             "dot.ted", "1"]
    if backend == "sqlite":
        names.append("nul\x00inside")  # PostgreSQL text cannot hold NUL
    values: dict[str, Any] = {n: f"value of {n!r}" for n in names}
    if stored == "as rows":
        values = {n: [v] for n, v in values.items()}
    versions: dict[str, Any] = {n: (i if i % 3 == 0 else f"v\u00e9{i}\x01" if i % 3 == 1 else i + 0.5)
                                for i, n in enumerate(names)}
    with SutramSaver.from_url(db_url) as saver:
        cp = checkpoint(values, versions)
        saved = saver.put(config("t-odd"), cp, {"source": "loop", "step": 0}, dict(versions))
    with SutramSaver.from_url(db_url) as fresh:  # nothing of the thread in memory
        for read in (fresh.get_tuple(config("t-odd")), fresh.get_tuple(saved), next(iter(fresh.list(config("t-odd"))))):
            assert read is not None
            assert read.checkpoint["channel_values"] == values
            assert read.checkpoint["channel_versions"] == versions


def test_a_nul_in_a_name_is_refused_on_postgresql_before_anything_is_written(db_url: str, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("SQLite stores a NUL (test_odd_channel_names_and_versions_read_back_by_get_tuple_and_list)")
    with SutramSaver.from_url(db_url) as saver:
        with pytest.raises(InvalidCheckpointError, match="cannot hold a NUL character"):
            put(saver, "t-nul", {"a\x00b": [1], "ok": [2]})
        assert saver.get_tuple(config("t-nul")) is None
        saved = put(saver, "t-nul", {"ok": [2]})
        for task_id, path, channel in (("t\x00", "", "ok"), ("t", "p\x00", "ok"), ("t", "", "c\x00")):
            with pytest.raises(InvalidCheckpointError, match="cannot hold a NUL character"):
                saver.put_writes(saved, [(channel, 1), ("ok", 2)], task_id, path)
        got = saver.get_tuple(saved)
        assert got is not None and got.pending_writes == []
        # a channel named in the versions but not new in this put goes into the row too
        cp = checkpoint({"ok": [3], "q\x00": [9]}, versions={"ok": 2, "q\x00": 1}, step=1)
        with pytest.raises(InvalidCheckpointError, match="cannot hold a NUL character"):
            saver.put(saved, cp, {"source": "loop", "step": 1}, {"ok": 2})
        assert saver.get_tuple(config("t-nul")) is not None and len(list(saver.list(config("t-nul")))) == 1
