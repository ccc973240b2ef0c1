"""PostgreSQL vector indexing off the write path: pending rows are searched exactly until
the indexer puts them into the HNSW index, and results do not change when it does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.memory import SqlMemoryBackend
from sutram_core.memory import MemoryStore
from tests.conftest import make_url
from tests.memory_support import WordHashEmbedder

pytestmark = pytest.mark.postgres

TEXTS = {f"k{i}": f"{w} note number {i}" for i, w in enumerate(["tea", "coffee", "cake", "bike", "rain"] * 8)}


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from make_url("postgres", tmp_path)


def _store(url: str, **options: object) -> MemoryStore:
    backend = SqlMemoryBackend(Database(url), **options)  # type: ignore[arg-type]
    return MemoryStore(backend, tenant="acme", embedder=WordHashEmbedder())


def _keys(store: MemoryStore, query: str) -> list[str]:
    return [h.record.key for h in store.search(query, mode="vector", limit=8)]


def _scores(store: MemoryStore, query: str) -> list[float]:
    # the hashing embedder gives many memories equal scores, whose order is arbitrary
    return [round(h.vector_score or 0.0, 5) for h in store.search(query, mode="vector", limit=8)]


def test_pending_vectors_are_found_before_and_after_indexing(pg_url: str) -> None:
    with _store(pg_url, vector_indexer_thread=False) as store:
        for key, text in TEXTS.items():
            store.put(("n",), key, {"text": text})
        index = store.backend.pgvector  # type: ignore[attr-defined]
        assert index.pending() == len(TEXTS)
        before = {q: _scores(store, q) for q in ("tea", "bike note", "rain number 4")}
        filtered = [h.record.key for h in store.search("tea", mode="vector", filter={"text": "tea note number 0"})]
        assert len(before["tea"]) == 8 and filtered == ["k0"]
        assert index.index_pending() == len(TEXTS) and index.pending() == 0
        assert {q: _scores(store, q) for q in before} == before
        store.put(("n",), "k0", {"text": "bike bike bike"})  # a changed vector waits again
        assert index.pending() == 1
        assert _keys(store, "bike bike bike")[0] == "k0"


def test_the_indexer_thread_drains_the_queue(pg_url: str) -> None:
    with _store(pg_url) as store:
        store.put_many([store.make_record(("n",), k, {"text": t}, None, "semantic", None, None, None, None)
                        for k, t in TEXTS.items()])
        index = store.backend.pgvector  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while index.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert index.pending() == 0
        assert _keys(store, "cake")[0] in {k for k, t in TEXTS.items() if t.startswith("cake")}


def test_inline_indexing_leaves_nothing_pending(pg_url: str) -> None:
    with _store(pg_url, deferred_vector_index=False) as store:
        store.put(("n",), "a", {"text": "green tea"})
        assert store.backend.pgvector.pending() == 0  # type: ignore[attr-defined]
        assert _keys(store, "green tea") == ["a"]


def test_a_process_forked_after_a_hybrid_search_can_search_too(pg_url: str) -> None:
    # gunicorn --preload, Celery prefork: the child inherits the pool that runs keyword
    # halves beside vector halves, but not its threads
    import os
    import signal

    store = _store(pg_url, vector_indexer_thread=False)
    store.put_many([store.make_record(("n",), k, {"text": t}, t, "semantic", None, None, None, None)
                    for k, t in TEXTS.items()])
    before = [h.record.key for h in store.search("coffee note", mode="hybrid", limit=5)]
    assert before
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by its exit status
        try:
            store.backend.db.engine.dispose(close=False)  # type: ignore[attr-defined]
            signal.alarm(20)  # a hang ends the child by SIGALRM
            got = [h.record.key for h in store.search("coffee note", mode="hybrid", limit=5)]
            os._exit(0 if got == before else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    store.close()
    assert os.WIFEXITED(status), f"the child's search hung (signal {os.WTERMSIG(status)})"
    assert os.WEXITSTATUS(status) == 0, "the child's search failed or found other memories"


def test_a_closed_store_leaves_no_keyword_thread_behind(pg_url: str) -> None:
    import threading

    store = _store(pg_url, vector_indexer_thread=False)
    store.put(("n",), "a", {"text": "green tea"})
    assert [h.record.key for h in store.search("green tea", mode="hybrid")] == ["a"]
    store.close()
    assert [h.record.key for h in store.search("green tea", mode="hybrid")] == ["a"]  # the engine stays usable
    assert not [t.name for t in threading.enumerate() if t.name.startswith("sutram-keyword")]
