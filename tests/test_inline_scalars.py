"""Scalar channel values, and the versions of empty channels, travel in their checkpoint's
row (as in PostgresSaver): what is inlined, what is not, and that rows written before (one
row per value) still read."""

from __future__ import annotations

import enum
import math
import operator
from typing import Annotated, Any, TypedDict

import ormsgpack
import pytest
import sqlalchemy as sa
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from sutram_adapters.langgraph import SutramSaver
from sutram_adapters.langgraph import saver as saver_module
from sutram_core.backends.sql.schema import checkpoint_blobs, checkpoints
from sutram_core.errors import CheckpointDecodeError
from tests.helpers import checkpoint, config, put


class Colour(str, enum.Enum):
    RED = "red"


def _blob_channels(saver: SutramSaver, thread: str) -> set[str]:
    with saver.database.engine.connect() as conn:
        rows = conn.execute(sa.select(checkpoint_blobs.c.channel).where(checkpoint_blobs.c.thread_id == thread))
        return {r[0] for r in rows}


def _values(saver: SutramSaver, thread: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    got = saver.get_tuple(config(thread, checkpoint_id=checkpoint_id))
    assert got is not None
    return got.checkpoint["channel_values"]


SCALARS: dict[str, Any] = {
    "none": None, "yes": True, "no": False, "zero": 0, "max64": 2**63 - 1, "min64": -(2**63),
    "umax64": 2**64 - 1, "half": 0.5, "inf": math.inf, "text": "x" * 256, "empty": "", "uni": "ünï ✓",
}
ROWS: dict[str, Any] = {
    "long_text": "x" * 257, "list": [1, 2], "dict": {"a": 1}, "enum": Colour.RED, "bytes": b"raw",
    "set": {1, 2},
}


def test_scalars_are_kept_in_the_checkpoint_row_and_read_back_exactly(db_url: str) -> None:
    with SutramSaver.from_url(db_url, allowed_types=[Colour]) as saver:
        put(saver, "t", {**SCALARS, **ROWS, "nan": math.nan})
        assert _blob_channels(saver, "t") == set(ROWS)
        got = _values(saver, "t")
        nan = got.pop("nan")
        assert math.isnan(nan)
        assert got == {**SCALARS, **ROWS}
        for name, value in {**SCALARS, **ROWS}.items():
            assert type(got[name]) is type(value), name
        with SutramSaver.from_url(db_url, allowed_types=[Colour]) as fresh:  # nothing from this process's memory
            again = _values(fresh, "t")
            assert math.isnan(again.pop("nan")) and again == got


def test_versions_of_inlined_and_stored_channels_both_come_back(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        cp = checkpoint({"n": 1, "msgs": ["a"]}, versions={"n": 3, "msgs": "v.7", "gone": 2})
        saver.put(config("t"), cp, {"source": "loop", "step": 0}, {"n": 3, "msgs": "v.7", "gone": 2})
        got = saver.get_tuple(config("t"))
        assert got is not None
        assert got.checkpoint["channel_versions"] == {"n": 3, "msgs": "v.7", "gone": 2}
        assert got.checkpoint["channel_values"] == {"n": 1, "msgs": ["a"]}  # "gone" has no value
        assert _blob_channels(saver, "t") == {"msgs"}  # the empty channel: its version, in the row


def test_a_channel_that_changes_kind_reads_right_at_every_checkpoint(db_url: str) -> None:
    history = [1, [1, 2], "three", {"four": 4}, None, [5]]
    with SutramSaver.from_url(db_url) as saver:
        parent: dict[str, Any] | None = None
        ids = []
        for step, value in enumerate(history):
            cp = checkpoint({"v": value, "other": step}, versions={"v": step + 1, "other": step + 1}, step=step)
            parent_id = parent["configurable"]["checkpoint_id"] if parent else None
            parent = saver.put(config("t", checkpoint_id=parent_id), cp, {"source": "loop", "step": step},
                               {"v": step + 1, "other": step + 1})
            ids.append(parent["configurable"]["checkpoint_id"])
        for readers in (saver, SutramSaver.from_url(db_url)):
            for step, (cid, value) in enumerate(zip(ids, history, strict=True)):
                assert _values(readers, "t", cid) == {"v": value, "other": step}
            listed = [t.checkpoint["channel_values"]["v"] for t in readers.list(config("t"))]
            assert listed == history[::-1]


def test_unchanged_scalar_channels_are_carried_by_each_checkpoint(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        first = checkpoint({"count": 1, "msgs": ["a"]}, versions={"count": 1, "msgs": 1})
        one = saver.put(config("t"), first, {"source": "loop", "step": 0}, {"count": 1, "msgs": 1})
        second = checkpoint({"count": 1, "msgs": ["a", "b"]}, versions={"count": 1, "msgs": 2}, step=1)
        saver.put(config("t", checkpoint_id=one["configurable"]["checkpoint_id"]), second,
                  {"source": "loop", "step": 1}, {"msgs": 2})  # count unchanged: not in new_versions
        assert _values(saver, "t") == {"count": 1, "msgs": ["a", "b"]}


def test_delta_channels_keep_their_rows(db_url: str) -> None:
    # LangGraph's DeltaChannel history is walked by version through the stored rows
    with SutramSaver.from_url(db_url) as saver:
        cp = checkpoint({"total": 5, "n": 1})
        saver.put(config("t"), cp, {"source": "loop", "step": 0, "counters_since_delta_snapshot": {"total": 0}},
                  dict(cp["channel_versions"]))
        assert _blob_channels(saver, "t") == {"total"}
        assert _values(saver, "t") == {"total": 5, "n": 1}


def test_rows_written_with_one_row_per_scalar_still_read(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with SutramSaver.from_url(db_url) as saver:
        monkeypatch.setattr(saver_module, "_inlined", lambda value: False)  # as before scalars were inlined
        old = put(saver, "t", {"n": 1, "s": "text"})
        assert _blob_channels(saver, "t") == {"n", "s"}
        monkeypatch.undo()
        new = put(saver, "t", {"n": 2, "s": "more"}, parent=old)
        assert _values(saver, "t", old["configurable"]["checkpoint_id"]) == {"n": 1, "s": "text"}
        assert _values(saver, "t", new["configurable"]["checkpoint_id"]) == {"n": 2, "s": "more"}
        assert [t.checkpoint["channel_values"] for t in saver.list(config("t"))] == [
            {"n": 2, "s": "more"}, {"n": 1, "s": "text"},
        ]


def test_a_value_too_big_for_a_row_still_names_its_channel(db_url: str) -> None:
    from sutram_core.errors import InvalidCheckpointError

    with SutramSaver.from_url(db_url) as saver, pytest.raises(InvalidCheckpointError, match="'big'"):
        put(saver, "t", {"big": 2**64, "n": 1})


def test_an_empty_channel_reads_empty_at_every_later_checkpoint(db_url: str) -> None:
    # its version stays while it is empty: later checkpoints find nothing to look up
    with SutramSaver.from_url(db_url) as saver:
        cp = checkpoint({"n": 1, "branch": None}, versions={"n": 1, "branch": 1})
        one = saver.put(config("t"), cp, {"source": "loop", "step": 0}, {"n": 1, "branch": 1})
        cp = checkpoint({"n": 2}, versions={"n": 2, "branch": 2}, step=1)
        two = saver.put(config("t", checkpoint_id=one["configurable"]["checkpoint_id"]), cp,
                        {"source": "loop", "step": 1}, {"n": 2, "branch": 2})
        cp = checkpoint({"n": 3}, versions={"n": 3, "branch": 2}, step=2)
        saver.put(config("t", checkpoint_id=two["configurable"]["checkpoint_id"]), cp,
                  {"source": "loop", "step": 2}, {"n": 3})
        assert _blob_channels(saver, "t") == set()
        got = saver.get_tuple(config("t"))
        assert got is not None
        assert got.checkpoint["channel_values"] == {"n": 3}
        assert got.checkpoint["channel_versions"] == {"n": 3, "branch": 2}
        assert _values(saver, "t", one["configurable"]["checkpoint_id"]) == {"n": 1, "branch": None}


@pytest.mark.parametrize("data", [
    ormsgpack.packb([1, 2]), ormsgpack.packb({"v": 4, "channel_values": [1]}),
    ormsgpack.packb({"v": 4, "channel_versions": "x"}), ormsgpack.packb(7),
], ids=["a list", "values not a map", "versions not a map", "an int"])
def test_a_checkpoint_row_that_holds_no_checkpoint_names_itself(db_url: str, data: bytes) -> None:
    with SutramSaver.from_url(db_url) as saver:
        good = put(saver, "t-good", {"n": 1})
        put(saver, "t-bad", {"n": 2})
        with saver.database.engine.begin() as conn:
            conn.execute(sa.update(checkpoints).where(checkpoints.c.thread_id == "t-bad")
                         .values(type="msgpack", checkpoint=data))
        with pytest.raises(CheckpointDecodeError, match="does not hold a checkpoint") as err:
            saver.get_tuple(config("t-bad"))
        assert err.value.thread_id == "t-bad"
        assert [t.config["configurable"]["checkpoint_id"] for t in saver.list(None)] == [
            good["configurable"]["checkpoint_id"]]


class _Counter(TypedDict):
    total: Annotated[int, operator.add]


def _add_sum(state: int, writes: list[int]) -> int:
    return state + sum(writes)


class _DeltaCounter(TypedDict):
    total: Annotated[int, DeltaChannel(_add_sum, int)]


def _counter_graph(schema: Any, saver: Any) -> Any:
    builder = StateGraph(schema)
    builder.add_node("inc", lambda state: {"total": 1})
    builder.add_edge(START, "inc")
    builder.add_edge("inc", END)
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("prune", [False, True], ids=["kept", "pruned before the change"])
def test_a_plain_channel_made_a_delta_channel_starts_from_the_value_kept_in_the_row(
    db_url: str, prune: bool
) -> None:
    # LangGraph's way from an operator.add channel to a DeltaChannel: the last plain value
    # is the seed; here it is kept in a checkpoint's row, not as a value row
    def drive(saver: Any, prune: bool) -> list[int]:
        cfg: Any = {"configurable": {"thread_id": "t"}}
        for _ in range(3):
            _counter_graph(_Counter, saver).invoke({"total": 10}, cfg)  # 11, 22, 33
        if prune:
            saver.prune(["t"])
        delta = _counter_graph(_DeltaCounter, saver)
        return [delta.invoke({"total": 100}, cfg)["total"] for _ in range(2)] + [delta.get_state(cfg).values["total"]]

    with SutramSaver.from_url(db_url) as saver:
        assert drive(saver, prune) == drive(InMemorySaver(), False) == [134, 235, 235]  # InMemorySaver cannot prune


def test_delta_history_finds_a_seed_kept_in_a_row_newer_than_a_stored_one(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as saver:
        c0 = put(saver, "t", {"total": [1]})  # a stored value (a row of its own)
        saver.put_writes(c0, [("total", "w0")], "task-0")
        cp = checkpoint({"total": 5}, versions={"total": 2}, step=1)  # then a scalar, in the row
        c1 = saver.put(c0, cp, {"source": "loop", "step": 1}, {"total": 2})
        saver.put_writes(c1, [("total", "w1")], "task-1")
        cp = checkpoint({}, versions={"total": 3}, step=2)
        c2 = saver.put(c1, cp, {"source": "loop", "step": 2, "counters_since_delta_snapshot": {"total": 1}},
                       {"total": 3})
        for reader in (saver, SutramSaver.from_url(db_url)):
            got = reader.get_delta_channel_history(config=c2, channels=["total"])
            assert got == {"total": {"writes": [("task-1", "total", "w1")], "seed": 5}}


def test_a_row_carrying_values_is_typed_so_that_a_reader_without_them_refuses_it(db_url: str) -> None:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    with SutramSaver.from_url(db_url) as saver:
        put(saver, "scalars", {"n": 1})
        put(saver, "lists", {"items": [1]})
        with saver.database.engine.connect() as conn:
            types = dict(conn.execute(sa.select(checkpoints.c.thread_id, checkpoints.c.type)).all())
    assert types == {"scalars": "inline+msgpack", "lists": "msgpack"}
    with pytest.raises(NotImplementedError):  # what an older Sutram's decoder does with it
        JsonPlusSerializer().loads_typed(("inline+msgpack", ormsgpack.packb({"v": 4})))


@pytest.mark.parametrize("version", [True, None, (1, 2)], ids=["bool", "None", "tuple"])
@pytest.mark.parametrize("value", [1, None, [1]], ids=["scalar", "none", "list"])
def test_a_version_that_is_not_str_int_or_float_is_refused_for_every_channel(
    db_url: str, version: Any, value: Any
) -> None:
    from sutram_core.errors import InvalidCheckpointError

    with SutramSaver.from_url(db_url) as saver:
        cp = checkpoint({"a": value}, versions={"a": version})
        with pytest.raises(InvalidCheckpointError, match="must be a str, int or float"):
            saver.put(config("t"), cp, {"source": "loop", "step": 0}, {"a": version})
        assert saver.get_tuple(config("t")) is None


@pytest.mark.parametrize("skeleton", [
    {"v": 4, "id": "x", "channel_values": [1], "channel_versions": {}},
    {"v": 4, "id": "x", "channel_values": {}, "channel_versions": {"a": [1]}},
    {"v": 4, "id": "x", "channel_values": {"a": 1}, "channel_versions": {}},
    {"v": 4, "id": "x", "channel_values": {1: 1}, "channel_versions": {1: 1}},
    {"v": 4, "channel_values": {}, "channel_versions": {}},
    {"v": 4, "id": "x", "versions_seen": [], "channel_values": {}, "channel_versions": {}},
], ids=["values a list", "a version a list", "a value without version", "int names", "no id", "versions_seen"])
def test_a_row_carrying_values_in_a_bad_shape_names_itself(db_url: str, skeleton: dict[Any, Any]) -> None:
    with SutramSaver.from_url(db_url) as saver:
        put(saver, "t-bad", {"n": 2})
        with saver.database.engine.begin() as conn:
            conn.execute(sa.update(checkpoints).where(checkpoints.c.thread_id == "t-bad")
                         .values(type="inline+msgpack", checkpoint=ormsgpack.packb(
                             skeleton, option=ormsgpack.OPT_NON_STR_KEYS)))
        with pytest.raises(CheckpointDecodeError, match="does not hold a checkpoint"):
            saver.get_tuple(config("t-bad"))


def test_a_row_holding_values_without_the_inline_type_still_reads_them(db_url: str) -> None:
    # written between the change that kept values in rows and the one that typed such rows
    with SutramSaver.from_url(db_url) as saver:
        saved = put(saver, "t", {"n": 6, "items": [1]})
        with saver.database.engine.begin() as conn:
            conn.execute(sa.update(checkpoints).where(checkpoints.c.thread_id == "t").values(type="msgpack"))
        got = saver.get_tuple(saved)
        assert got is not None and got.checkpoint["channel_values"] == {"n": 6, "items": [1]}
        assert got.checkpoint["channel_versions"] == {"n": 1, "items": 1}


def test_delta_history_of_a_channel_no_row_carries_reads_back_to_the_root(db_url: str) -> None:
    # 40 checkpoints of scalars before the delta channel's first write: its history has no
    # seed, and the rows read to learn that (in batches, then remembered) change nothing
    def drive(saver: Any) -> list[Any]:
        parent: Any = config("t")
        for step in range(40):
            cp = checkpoint({"n": step}, versions={"n": step + 1}, step=step)
            parent = saver.put(parent, cp, {"source": "loop", "step": step}, {"n": step + 1})
        saver.put_writes(parent, [("log", "first")], "task")
        cp = checkpoint({"n": 40}, versions={"n": 41, "log": 1}, step=40)
        head = saver.put(parent, cp, {"source": "loop", "step": 40, "counters_since_delta_snapshot": {"log": 1}},
                         {"n": 41, "log": 1})
        return [saver.get_delta_channel_history(config=head, channels=["log", "n"]) for _ in range(2)]

    with SutramSaver.from_url(db_url) as saver:
        got = drive(saver)
    want = drive(InMemorySaver())
    assert got == want and got[0]["log"] == {"writes": [("task", "log", "first")]}


@pytest.mark.parametrize("nodes", [10, 80])
def test_a_checkpoint_row_is_compressed_only_when_large_and_reads_back_the_same(db_url: str, nodes: int) -> None:
    """A row's own data (versions_seen of every node, in LangGraph's long version strings) is
    compressed from saver._COMPRESS_FROM bytes; smaller, compressing cost more time than the
    bytes were worth. Either way the checkpoint reads back as written."""
    with SutramSaver.from_url(db_url) as saver:
        version = saver.get_next_version(None, None)
        cp = checkpoint({"n": 1, "messages": ["a", "b"]}, {"n": version, "messages": version})
        cp["versions_seen"] = {f"node{i}": {"n": version, f"branch:to:node{i}": version} for i in range(nodes)}
        saver.put(config("t"), cp, {"source": "loop", "step": 0}, {"n": version, "messages": version})
        with saver.database.engine.connect() as conn:
            stored_type, data = conn.execute(sa.select(checkpoints.c.type, checkpoints.c.checkpoint)).one()
        assert stored_type.startswith("zlib+") == (nodes == 80)
        if nodes == 10:  # a small graph's checkpoint, about 1.3 KB: kept as it is
            assert 1024 < len(data) < saver_module._COMPRESS_FROM
        got = saver.get_tuple(config("t"))
        assert got is not None
        assert got.checkpoint["versions_seen"] == cp["versions_seen"]
        assert got.checkpoint["channel_values"] == cp["channel_values"]


def test_an_enum_version_is_kept_as_its_plain_value_in_every_kind_of_channel(db_url: str) -> None:
    """A version that is a str or int subclass (an Enum from a custom get_next_version) reads
    back as its plain value whether its channel's value is kept in the row or stored apart;
    kept as the Enum in the row, the checkpoint could not be read without allowing its class."""
    class Tag(str, enum.Enum):
        ONE = "one"

    class Num(enum.IntEnum):
        TWO = 2

    with SutramSaver.from_url(db_url) as saver:
        cp = checkpoint({"scalar": 1, "items": [1, 2]},
                        {"scalar": Tag.ONE, "items": Tag.ONE, "empty": Num.TWO})
        saver.put(config("t"), cp, {"source": "loop", "step": 0}, dict(cp["channel_versions"]))
        got = saver.get_tuple(config("t"))
        assert got is not None
        versions = got.checkpoint["channel_versions"]
        assert versions == {"scalar": "one", "items": "one", "empty": 2}
        assert {type(v) for v in versions.values()} == {str, int}
        assert got.checkpoint["channel_values"] == {"scalar": 1, "items": [1, 2]}


@pytest.mark.parametrize("missing", ["id", "channel_values", "channel_versions"])
def test_a_checkpoint_without_its_keys_is_refused_before_anything_is_written(db_url: str, missing: str) -> None:
    from sutram_core.errors import InvalidCheckpointError

    with SutramSaver.from_url(db_url) as saver:
        cp = checkpoint({"a": 1})
        del cp[missing]
        with pytest.raises(InvalidCheckpointError, match=missing):
            saver.put(config("t"), cp, {"source": "loop", "step": 0}, {"a": 1})
        assert saver.get_tuple(config("t")) is None
