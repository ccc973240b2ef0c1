"""Storage grows linearly with conversation length (langgraph 7843, 7714)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from sutram_adapters.langgraph import SutramSaver
from sutram_core.backends.sql.schema import checkpoint_blobs, checkpoints
from sutram_core.checkpoints import ChannelValue, CheckpointRecord, ListDeltaEncoder, assemble_value
from tests.test_langgraph_graphs import chain_graph


def stored_bytes(saver: SutramSaver) -> int:
    with saver.database.engine.connect() as conn:
        blobs = conn.execute(sa.select(sa.func.sum(sa.func.length(checkpoint_blobs.c.data)))).scalar_one()
        cps = conn.execute(sa.select(sa.func.sum(sa.func.length(checkpoints.c.checkpoint)))).scalar_one()
    return int(blobs or 0) + int(cps or 0)


def grow(graph: Any, turns: int) -> None:
    cfg = {"configurable": {"thread_id": "long"}}
    for t in range(turns):
        graph.invoke({"messages": [HumanMessage(content=f"question {t} " + "lorem ipsum " * 8)]}, cfg)


def test_bytes_grow_linearly_with_conversation_length(db_url: str) -> None:
    sizes = []
    for turns in (20, 40):
        with SutramSaver.from_url(db_url) as saver:
            saver.delete_thread("long")
            grow(chain_graph().compile(checkpointer=saver), turns)
            sizes.append(stored_bytes(saver))
    # linear: doubling the conversation roughly doubles the bytes (quadratic would be ~4x)
    assert sizes[1] / sizes[0] < 2.6, sizes


def test_far_smaller_than_sqlite_saver(tmp_path: Path) -> None:
    import sqlite3

    with SutramSaver.from_url(f"sqlite:///{tmp_path / 's.db'}") as saver:
        grow(chain_graph().compile(checkpointer=saver), 40)
        ours = stored_bytes(saver)
    conn = sqlite3.connect(tmp_path / "peer.db", check_same_thread=False)
    peer_saver = SqliteSaver(conn)
    grow(chain_graph().compile(checkpointer=peer_saver), 40)
    peer = conn.execute("select sum(length(checkpoint)) from checkpoints").fetchone()[0]
    assert ours < 0.2 * peer, (ours, peer)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.text(max_size=5), max_size=3)),
        st.tuples(st.just("replace"), st.lists(st.text(max_size=5), max_size=4)),
        st.tuples(st.just("edit_first"), st.text(max_size=5)),
        st.tuples(st.just("pop"), st.none()),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(ops=ops)
def test_list_delta_codec_rebuilds_every_version_exactly(ops: list[tuple[str, Any]]) -> None:
    """Pure codec property: whatever happens to a list, every stored version reads back."""
    serde = JsonPlusSerializer()
    encoder = ListDeltaEncoder()
    rows: dict[tuple[str, str], Any] = {}
    expected: dict[str, bytes] = {}
    value: list[Any] = []
    parent = None
    for i, (op, arg) in enumerate(ops):
        if op == "append":
            value = value + arg
        elif op == "replace":
            value = list(arg)
        elif op == "edit_first" and value:
            value = [arg, *value[1:]]
        elif op == "pop" and value:
            value = value[:-1]
        version = f"v{i}"
        type_, data = serde.dumps_typed(value)
        record = CheckpointRecord("t", "th", "", f"c{i:04}", parent, None, "null", b"", "{}",
                                  {"messages": version}, [ChannelValue("messages", version, type_, data)])
        new_rows, pending = encoder.encode(record)
        encoder.commit(pending)
        for r in new_rows:
            rows[(r.channel, r.version)] = r
        expected[version] = data
        parent = f"c{i:04}"
    for version, data in expected.items():
        rebuilt = assemble_value("messages", version, rows, "test")
        assert rebuilt is not None
        assert serde.loads_typed(rebuilt) == serde.loads_typed(("msgpack", data))
