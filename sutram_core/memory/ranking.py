"""Fusing vector and keyword rankings, and weighting by recency.

Hybrid search runs a vector search and a keyword search and merges their rankings by
weighted reciprocal rank fusion: a record at rank ``r`` (1-based) in a list of weight
``w`` earns ``w / (k + r)``. Equal weights let a weak keyword signal drag good vector
results down; the defaults below were tuned on Sutram's labelled memory set
(``tests/data/memory_qa.json``, see ``tests/test_memory_quality.py``), where hybrid search
must rank at least as well as the better of its two halves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FusionWeights", "fuse", "recency_factor"]


@dataclass(frozen=True)
class FusionWeights:
    """Weights of reciprocal rank fusion. ``k`` damps the head of each list."""

    vector: float = 1.0
    keyword: float = 0.35
    k: float = 10.0


def fuse(
    vector_ids: Sequence[str], keyword_ids: Sequence[str], weights: FusionWeights = FusionWeights()
) -> list[tuple[str, float]]:
    """Merge two best-first id lists into one ``(id, score)`` list, best first.

    >>> [i for i, _ in fuse(["a", "b", "c"], ["c", "a"])]
    ['a', 'c', 'b']
    """
    scores: dict[str, float] = {}
    for weight, ids in ((weights.vector, vector_ids), (weights.keyword, keyword_ids)):
        if weight <= 0:
            continue
        for rank, ident in enumerate(ids, start=1):
            scores[ident] = scores.get(ident, 0.0) + weight / (weights.k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def recency_factor(age_seconds: float, half_life_seconds: float | None) -> float:
    """A multiplier in (0, 1] that halves every ``half_life_seconds`` of age (1 when off)."""
    if not half_life_seconds or half_life_seconds <= 0:
        return 1.0
    return math.pow(0.5, max(age_seconds, 0.0) / half_life_seconds)
