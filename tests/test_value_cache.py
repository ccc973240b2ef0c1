"""The store's cache of values it wrote as deltas: reads with and without it agree, and
it never outlives a delete or holds more than its bound."""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import HumanMessage

from sutram_adapters.langgraph import SutramSaver
from sutram_core.checkpoints.value_cache import ValueCache, cacheable_version
from tests.test_langgraph_graphs import chain_graph, run_turns


def test_warm_and_cold_reads_return_the_same_checkpoints(db_url: str) -> None:
    with SutramSaver.from_url(db_url) as warm:
        graph = chain_graph().compile(checkpointer=warm)
        run_turns(graph, "t", 12)
        assert warm._store._recent._items, "the writer cached its delta-stored values"
        with SutramSaver.from_url(db_url) as cold:
            assert not cold._store._recent._items
            cfg = {"configurable": {"thread_id": "t"}}
            a = [(t.config, t.checkpoint, t.pending_writes) for t in warm.list(cfg)]
            b = [(t.config, t.checkpoint, t.pending_writes) for t in cold.list(cfg)]
            assert a == b and len(a) > 50


def test_delete_clears_the_cache_and_the_bound_holds(tmp_path: Path) -> None:
    with SutramSaver.from_url(f"sqlite:///{tmp_path}/c.db") as saver:
        graph = chain_graph().compile(checkpointer=saver)
        run_turns(graph, "t", 6)
        assert any(k[1] == "t" for k in saver._store._recent._items)
        saver.delete_thread("t")
        assert not any(k[1] == "t" for k in saver._store._recent._items)
        graph.invoke({"messages": [HumanMessage(content="again")]}, {"configurable": {"thread_id": "t"}})
        state = graph.get_state({"configurable": {"thread_id": "t"}})
        assert state.values["messages"][0].content == "again"

    cache = ValueCache(max_bytes=1000)
    for i in range(50):
        cache.put(("t", "th", "", "m", f"s{i}.0.1"), ("msgpack", b"x" * 100))
    assert cache._bytes <= 1000 and len(cache._items) == 10
    assert cache.get(("t", "th", "", "m", "s0.0.1")) is None


def test_only_unique_string_versions_are_cached() -> None:
    assert cacheable_version("s00000000000000000000000000000003.0.123")
    assert not cacheable_version("i3") and not cacheable_version("s3") and not cacheable_version("f1.5")
