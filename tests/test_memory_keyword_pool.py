"""SQLite's keyword half filters the best full-text matches first and all of them only when
too few pass (``_fts5_plan``). Whatever the filters, tenants and the share the filters kept
before, its answer must be the one of filtering every match: checked here against the store
with the first try turned off, on random memories in two tenants (one holding most of the
matches, so that the first try often falls short)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sutram_core.backends.sql import memory as sql_memory
from sutram_core.memory import MemoryStore, parse_filter
from sutram_core.memory.ranking import keyword_terms
from sutram_core.memory.records import now_micros
from sutram_core.memory.store import SearchRequest

WORDS = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta"]

docs = st.lists(
    st.tuples(st.sampled_from(["mine", "other"]), st.lists(st.sampled_from(WORDS), min_size=1, max_size=5),
              st.integers(0, 3)),
    min_size=1, max_size=150)


def _keys(store: MemoryStore, query: str, limit: int, flt: dict[str, Any] | None) -> list[tuple[str, float | None]]:
    return [(h.record.key, h.score) for h in store.search(query, mode="keyword", limit=limit, filter=flt)]


def _candidates(store: MemoryStore, query: str, depth: int, flt: dict[str, Any] | None) -> list[tuple[int, float]]:
    """The keyword half's candidates themselves (fusion may hide a wrong one below the page)."""
    backend = store.backend
    request = SearchRequest(query=query, conditions=parse_filter(flt), mode="keyword", now=now_micros())
    plan = backend._keyword_plan(store.tenant, backend._where(store.tenant, request), keyword_terms(query), depth, {})
    return backend.db.run(plan, write=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=docs, query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
       limit=st.integers(1, 30), bucket=st.sampled_from([None, 0, 3]), repeats=st.integers(1, 3),
       copies=st.integers(1, 3))
def test_the_first_try_finds_what_filtering_every_match_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              rows: list[tuple[str, list[str], int]], query: list[str],
                                                              limit: int, bucket: int | None, repeats: int,
                                                              copies: int) -> None:
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    (tmp_path / "pool.db").unlink(missing_ok=True)
    flt = None if bucket is None else {"bucket": bucket}
    text = " ".join(query)
    with MemoryStore.from_url(url, tenant="mine", embedder=False) as mine, \
            MemoryStore.from_url(url, tenant="other", embedder=False) as other:
        for store in (mine, other):  # up to 450 memories: more matches than the first try reads
            store.put_many([store.make_record(("docs",), f"k{i}.{c}", {"text": " ".join(words), "bucket": b},
                                              " ".join(words), "semantic", None, None, None, None)
                            for i, (tenant, words, b) in enumerate(rows) for c in range(copies)
                            if (tenant == "mine") == (store is mine)])
        pooled = [(_keys(mine, text, limit, flt), _candidates(mine, text, limit, flt)) for _ in range(repeats)]
        with monkeypatch.context() as patched:  # one fixture serves every example: undo each time
            patched.setattr(sql_memory, "_FTS_POOL_MAX", 0)
            every = (_keys(mine, text, limit, flt), _candidates(mine, text, limit, flt))
    for got in pooled:  # the first, and after the kept share adapted to this tenant and filter
        assert got == every


def test_a_tenant_with_few_of_the_matches_still_gets_all_of_its_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crowd.db'}"
    with MemoryStore.from_url(url, tenant="crowd", embedder=False) as crowd, \
            MemoryStore.from_url(url, tenant="few", embedder=False) as few:
        crowd.put_many([crowd.make_record(("d",), f"c{i}", {"text": f"invoice paid {i}"}, f"invoice paid {i}",
                                          "semantic", None, None, None, None) for i in range(3000)])
        for i in range(50):
            few.put(("d",), f"f{i}", {"text": f"invoice {'paid' if i % 2 else 'due'} {i}"})
        for _ in range(3):  # first, and after the kept share has fallen
            hits = few.search("invoice paid", mode="keyword", limit=45)
            assert len(hits) == 45
            assert {h.record.key for h in hits[:25]} == {f"f{i}" for i in range(1, 50, 2)}

