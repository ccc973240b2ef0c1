"""Persistent memory: episodic, semantic and procedural records with hybrid search.

The store and the embedders need the ``memory`` extra (numpy, and for the offline
embedder onnxruntime and tokenizers): they are imported when first named, so that the
records, filters and ranking (which the checkpointer and the durable runner use) import
without it, and a missing extra is named when the store is.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

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
