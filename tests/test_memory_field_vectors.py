"""One vector per index field, as LangGraph embeds them: a record scores by its best field.

The vector half of a search returns each record once, with the cosine similarity of its
best vector, on both databases; a rewritten record forgets its old field vectors, a
deleted or expired one takes them along, and another process sees every change.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import text

from sutram_adapters.langgraph import SutramStore
from sutram_core.memory import MemoryStore
from tests.memory_support import WordHashEmbedder

EMBED = WordHashEmbedder()
INDEX = {"dims": EMBED.dims, "embed": EMBED, "fields": ["title", "tags[*]"]}


def _unit(t: str) -> np.ndarray:
    v = np.asarray(EMBED([t])[0], dtype=np.float32)
    return v / np.linalg.norm(v)


def _cos(a: str, b: str) -> float:
    return float(_unit(a) @ _unit(b))


@pytest.fixture
def store(db_url: str) -> Iterator[SutramStore]:
    with SutramStore.from_url(db_url, tenant="acme", index=INDEX) as s:  # type: ignore[arg-type]
        yield s


def _vector_hits(store: SutramStore, query: str, **kw: object) -> list[tuple[str, float]]:
    hits = store.memory.search(query, mode="vector", limit=10, **kw)  # type: ignore[arg-type]
    return [(h.record.key, round(h.vector_score or 0.0, 5)) for h in hits]


def test_the_vector_half_returns_each_record_once_with_its_best_fields_cosine(store: SutramStore) -> None:
    store.put(("d",), "a", {"title": "a red bike", "tags": ["green tea", "cake"]})
    store.put(("d",), "b", {"title": "green tea with lemon", "tags": ["bike"]})
    hits = _vector_hits(store, "green tea")
    assert [k for k, _ in hits] == ["a", "b"]  # a's tag is the query itself
    assert dict(hits) == pytest.approx({"a": round(_cos("green tea", "green tea"), 5),
                                        "b": round(max(_cos("green tea", "green tea with lemon"),
                                                       _cos("green tea", "bike")), 5)}, abs=1e-4)


def test_a_rewritten_record_forgets_its_old_field_vectors(store: SutramStore, db_url: str) -> None:
    store.put(("d",), "a", {"title": "bike", "tags": ["green tea"]})
    store.put(("d",), "b", {"title": "cake", "tags": ["rain"]})
    with SutramStore.from_url(db_url, tenant="acme", index=INDEX) as other:  # type: ignore[arg-type]
        assert [k for k, _ in _vector_hits(other, "green tea")][:1] == ["a"]
        store.put(("d",), "a", {"title": "bike", "tags": ["rain"]})  # written by this process
        hits = dict(_vector_hits(other, "green tea"))  # seen by that one
        assert hits["a"] == pytest.approx(max(_cos("green tea", "bike"), _cos("green tea", "rain")), abs=1e-4)
        store.put(("d",), "a", {"title": "bike"}, index=["title"])  # one field now: no extra vectors
        assert dict(_vector_hits(other, "rain"))["a"] == pytest.approx(_cos("rain", "bike"), abs=1e-4)


def test_filters_apply_to_records_found_by_a_field_vector(store: SutramStore) -> None:
    store.put(("d",), "a", {"title": "bike", "tags": ["green tea"], "lang": "en"})
    store.put(("d",), "b", {"title": "cake", "tags": ["green tea"], "lang": "fr"})
    assert [k for k, _ in _vector_hits(store, "green tea", filter={"lang": "fr"})] == ["b"]


def test_deleting_or_expiring_a_record_takes_its_field_vectors(store: SutramStore, db_url: str) -> None:
    store.put(("d",), "a", {"title": "bike", "tags": ["green tea", "rain"]})
    store.put(("d",), "b", {"title": "cake", "tags": ["green tea", "rain"]}, ttl=1 / 600)
    store.delete(("d",), "a")
    import time

    time.sleep(0.2)
    assert store.sweep_ttl() == 1
    assert _vector_hits(store, "green tea") == []
    db = store.memory.backend.db  # type: ignore[attr-defined]
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sutram_memory_field_vectors")).scalar_one() == 0


def test_records_with_one_field_store_no_extra_vectors(db_url: str) -> None:
    with MemoryStore.from_url(db_url, tenant="acme", embedder=EMBED) as memory:
        memory.put(("d",), "a", {"text": "green tea"})
        rec = memory.get(("d",), "a")
        assert rec is not None
        assert [h.record.key for h in memory.search("green tea", mode="vector")] == ["a"]


def test_as_of_searches_score_closed_records_by_their_best_field(db_url: str) -> None:
    import time

    with MemoryStore.from_url(db_url, tenant="acme", embedder=EMBED) as memory:
        def put(texts: list[str]) -> None:
            rec = memory.make_record(("p",), "how", {"text": " ".join(texts)}, None, "procedural", None, None, None,
                                     None)
            rec.field_texts = texts
            memory.put_many([rec])

        put(["bike", "green tea"])
        between = time.time()
        time.sleep(0.01)
        put(["cake", "rain"])  # the next version closes the first
        then = memory.search("green tea", mode="vector", as_of=between, limit=5)
        assert [h.record.version for h in then] == [1]
        assert then[0].vector_score == pytest.approx(1.0, abs=1e-4)
