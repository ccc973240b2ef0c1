"""Retrieval quality on a labelled set: hybrid search ranks at least as well as either half.

``tests/data/memory_qa.json`` (built by ``build_memory_qa.py``): 200 memories about 40
people, 60 questions that paraphrase one memory each. Every question has near-miss
distractors: the person's four other memories (sharing the name, the only keyword the
question has) and 39 memories on the same topic about other people. Runs with the real
default embedder (MiniLM int8), on both databases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sutram_core.backends.sql.memory_sql import keyword_terms
from sutram_core.memory import FusionWeights, MemoryStore

DATA = json.loads((Path(__file__).parent / "data" / "memory_qa.json").read_text())


@pytest.fixture
def qa_store(db_url: str) -> Iterator[MemoryStore]:
    with MemoryStore.from_url(db_url, tenant="qa") as store:
        store.put_many([
            store.make_record(("people", m["person"].lower()), m["key"], {"text": m["text"]}, None, "semantic",
                              {"topic": m["topic"]}, None, None, None)
            for m in DATA["memories"]
        ])
        yield store


def mrr(store: MemoryStore, mode: str) -> float:
    total = 0.0
    for q in DATA["questions"]:
        keys = [h.record.key for h in store.search(q["question"], mode=mode, limit=10)]
        total += 1.0 / (keys.index(q["answer"]) + 1) if q["answer"] in keys else 0.0
    return total / len(DATA["questions"])


def test_the_labelled_set_has_near_miss_distractors() -> None:
    assert len(DATA["memories"]) >= 200 and len(DATA["questions"]) >= 50
    people = {m["person"] for m in DATA["memories"]}
    for q in DATA["questions"]:
        person = next(m["person"] for m in DATA["memories"] if m["key"] == q["answer"])
        same_person = [m for m in DATA["memories"] if m["person"] == person]
        assert len(same_person) == 5 and len(people) == 40
        answer_text = next(m["text"] for m in DATA["memories"] if m["key"] == q["answer"])
        content = set(keyword_terms(answer_text)) - {person.lower()}
        assert not content & set(keyword_terms(q["question"])), q  # a paraphrase: only the name is shared


def test_hybrid_search_ranks_at_least_as_well_as_vector_or_keyword_alone(qa_store: MemoryStore) -> None:
    vector, keyword, hybrid = (mrr(qa_store, m) for m in ("vector", "keyword", "hybrid"))
    print(f"MRR@10: vector {vector:.4f}, keyword {keyword:.4f}, hybrid {hybrid:.4f}")
    assert vector > 0.75 and keyword < vector
    assert hybrid >= max(vector, keyword)


def test_equal_weight_fusion_is_what_the_tuned_weights_avoid(qa_store: MemoryStore) -> None:
    tuned = mrr(qa_store, "hybrid")
    qa_store.weights = FusionWeights(vector=1.0, keyword=1.0, k=60.0, keyword_tie=0.0)
    naive = mrr(qa_store, "hybrid")
    print(f"MRR@10: tuned hybrid {tuned:.4f}, equal-weight RRF {naive:.4f}")
    assert naive < mrr(qa_store, "vector") <= tuned
