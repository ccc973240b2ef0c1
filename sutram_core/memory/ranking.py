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

__all__ = ["FusionWeights", "fuse", "recency_factor", "tied_ranks"]


@dataclass(frozen=True)
class FusionWeights:
    """Weights of reciprocal rank fusion.

    ``k`` damps the head of each list. ``keyword_tie``: keyword scores within this
    fraction of the score that opened a rank share that rank. BM25 scores of memories that
    match the same query words (typically a person's name) differ only by text length,
    and ranking them apart would let that noise decide.
    """

    vector: float = 1.0
    keyword: float = 0.4
    k: float = 10.0
    keyword_tie: float = 0.2


def tied_ranks(scored: Sequence[tuple[str, float]], tolerance: float) -> list[tuple[str, int]]:
    """1-based ranks of a best-first ``(id, score)`` list; near-equal scores share a rank.

    >>> tied_ranks([("a", 10.0), ("b", 9.0), ("c", 5.0)], 0.2)
    [('a', 1), ('b', 1), ('c', 3)]
    """
    out: list[tuple[str, int]] = []
    rank, opener = 0, None
    for i, (ident, score) in enumerate(scored, start=1):
        if opener is None or abs(score - opener) > tolerance * max(abs(opener), 1e-12):
            rank, opener = i, score
        out.append((ident, rank))
    return out


def fuse(
    vector: Sequence[tuple[str, float]], keyword: Sequence[tuple[str, float]],
    weights: FusionWeights = FusionWeights(),
) -> list[tuple[str, float]]:
    """Merge two best-first ``(id, score)`` lists into one ``(id, fused score)`` list, best first.

    >>> [i for i, _ in fuse([("a", 0.9), ("b", 0.8), ("c", 0.1)], [("c", 5.0), ("a", 1.0)])]
    ['a', 'c', 'b']
    """
    scores: dict[str, float] = {}
    for weight, ranked in ((weights.vector, tied_ranks(vector, 0.0)),
                           (weights.keyword, tied_ranks(keyword, weights.keyword_tie))):
        if weight <= 0:
            continue
        for ident, rank in ranked:
            scores[ident] = scores.get(ident, 0.0) + weight / (weights.k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def recency_factor(age_seconds: float, half_life_seconds: float | None) -> float:
    """A multiplier in (0, 1] that halves every ``half_life_seconds`` of age (1 when off)."""
    if not half_life_seconds or half_life_seconds <= 0:
        return 1.0
    return math.pow(0.5, max(age_seconds, 0.0) / half_life_seconds)
