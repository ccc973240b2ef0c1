"""Loading the labelled retrieval sets into a store and scoring searches on them (MRR@10).

Shared by ``tests/test_memory_quality.py`` and ``bench/memory.py``. A set is described in
``tests/data/build_memory_sets.py``; ``memory_qa.json`` (people's facts) is read as a sixth
set named ``people``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sutram_core.memory import MemoryStore

DATA = Path(__file__).parent / "data"
SET_NAMES = ("paraphrase", "identifiers", "names", "temporal", "conversations", "people")


def load_set(name: str) -> dict[str, Any]:
    """The labelled set ``name`` as a dict of memories and questions."""
    if name == "people":
        raw = json.loads((DATA / "memory_qa.json").read_text())
        return {"name": "people", "questions": raw["questions"], "memories": [
            {"key": m["key"], "text": m["text"], "namespace": ["people", m["person"].lower()]}
            for m in raw["memories"]]}
    return json.loads((DATA / "memory_sets" / f"{name}.json").read_text())


def fill(store: MemoryStore, data: dict[str, Any]) -> None:
    """Store a set's memories; a memory with ``superseded_by`` is closed by that one."""
    by_key = {m["key"]: m for m in data["memories"]}
    later = {m["superseded_by"] for m in data["memories"] if "superseded_by" in m}

    def record(m: dict[str, Any]) -> Any:
        return store.make_record(tuple(m["namespace"]), m["key"], {"text": m["text"]}, None,
                                 m.get("kind", "semantic"), None, None, None, _time(m.get("valid_from")))

    store.put_many([record(m) for m in data["memories"] if m["key"] not in later])
    for m in data["memories"]:
        if "superseded_by" in m:
            store.supersede((tuple(m["namespace"]), m["key"]), record(by_key[m["superseded_by"]]))


def _time(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


Search = Callable[[str, dict[str, Any]], Sequence[str]]


def store_search(store: MemoryStore, mode: str) -> Search:
    """A search function over ``store`` in ``mode`` returning the found keys, best first."""
    def run(question: str, q: dict[str, Any]) -> list[str]:
        return [h.record.key for h in store.search(question, mode=mode, limit=10, as_of=_time(q.get("as_of")))]
    return run


def mrr(search: Search, questions: Sequence[dict[str, Any]]) -> float:
    """Mean reciprocal rank of each question's answer in the top 10 (0 when not found)."""
    total = 0.0
    for q in questions:
        keys = list(search(q["question"], q))[:10]
        total += 1.0 / (keys.index(q["answer"]) + 1) if q["answer"] in keys else 0.0
    return total / len(questions)
