"""The store's cache of values it wrote as deltas: reads with and without it agree, and
it never outlives a delete or holds more than its bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage

from sutram_adapters.langgraph import SutramSaver
from sutram_core.checkpoints.value_cache import BoundedLRU, ValueCache, cacheable_version
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
    assert cache._total <= 1000 and len(cache) == 10
    assert cache.get(("t", "th", "", "m", "s0.0.1")) is None


def test_only_unique_string_versions_are_cached() -> None:
    assert cacheable_version("s00000000000000000000000000000003.0.123")
    assert not cacheable_version("i3") and not cacheable_version("s3") and not cacheable_version("f1.5")


# -- the bounded LRU both caches of the store are (values written, values rows carry) -------------

_KEYS = st.tuples(st.sampled_from(["t1", "t2"]), st.sampled_from(["a", "b", "c"]), st.integers(0, 5))
_OPS = st.lists(st.one_of(
    st.tuples(st.just("put"), _KEYS, st.integers(0, 40)),
    st.tuples(st.just("get"), _KEYS),
    st.tuples(st.just("get_many"), st.lists(_KEYS, max_size=4)),
    st.tuples(st.just("pop"), _KEYS),
    st.tuples(st.just("forget"), st.sampled_from(["t1", "t2"]), st.none() | st.lists(st.sampled_from("abc")))),
    max_size=60)


@given(ops=_OPS, limit=st.integers(1, 100), weighted=st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_bounded_lru_agrees_with_a_plain_model(ops: list[Any], limit: int, weighted: bool) -> None:
    """Against an ordered list as the model: the same values come back, the least recently
    used go first, the total weight never passes the bound, deletes drop exactly theirs."""
    weight = (lambda v: v) if weighted else (lambda v: 1)
    lru: BoundedLRU[Any, int] = BoundedLRU(limit, weight=weight)
    model: list[tuple[Any, int]] = []  # oldest first

    def touch(key: Any) -> int | None:
        for i, (k, v) in enumerate(model):
            if k == key:
                model.append(model.pop(i))
                return v
        return None

    for op in ops:
        if op[0] == "put":
            _, key, value = op
            if weight(value) > max(1, limit // 4):
                continue
            model[:] = [(k, v) for k, v in model if k != key] + [(key, value)]
            while sum(weight(v) for _, v in model) > limit:
                model.pop(0)
            lru.put(key, value)
        elif op[0] == "get":
            assert lru.get(op[1]) == touch(op[1])
        elif op[0] == "get_many":
            expected = {k: v for k in op[1] if (v := touch(k)) is not None}
            assert lru.get_many(op[1]) == expected
        elif op[0] == "pop":
            model[:] = [(k, v) for k, v in model if k != op[1]]
            lru.pop(op[1])
        else:
            _, tenant, threads = op
            model[:] = [(k, v) for k, v in model if not (k[0] == tenant and (threads is None or k[1] in threads))]
            lru.forget(tenant, threads)
        assert list(lru._items.items()) == model
        assert lru._total == sum(weight(v) for _, v in model) <= limit
