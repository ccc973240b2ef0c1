"""Persistent memory: episodic, semantic and procedural records with hybrid search.

The store and the embedders need the ``memory`` extra (numpy, and for the offline
embedder onnxruntime and tokenizers): they are imported when first named, so that the
records, filters and ranking (which the checkpointer and the durable runner use) import
without it, and a missing extra is named when the store is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sutram_core._lazy import lazy_attributes
from sutram_core.memory.filters import Condition, matches, parse_filter
from sutram_core.memory.ranking import FusionWeights, fuse, recency_factor
from sutram_core.memory.records import (
    MemoryKind,
    MemoryRecord,
    NamespaceMatch,
    Provenance,
    SearchHit,
)

if TYPE_CHECKING:
    from sutram_core.memory.embedders import Embedder, MiniLMEmbedder, as_embedder, default_embedder
    from sutram_core.memory.store import MemoryBackend, MemoryStore, SearchRequest, Write

_LAZY = {name: "embedders" for name in ("Embedder", "MiniLMEmbedder", "as_embedder", "default_embedder")} | {
    name: "store" for name in ("MemoryBackend", "MemoryStore", "SearchRequest", "Write")}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

__all__ = [
    "Condition",
    "Embedder",
    "FusionWeights",
    "MemoryBackend",
    "MemoryKind",
    "MemoryRecord",
    "MemoryStore",
    "MiniLMEmbedder",
    "NamespaceMatch",
    "Provenance",
    "SearchHit",
    "SearchRequest",
    "Write",
    "as_embedder",
    "default_embedder",
    "fuse",
    "matches",
    "parse_filter",
    "recency_factor",
]
