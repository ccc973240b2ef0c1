"""Persistent memory: episodic, semantic and procedural records with hybrid search."""

from sutram_core.memory.embedders import Embedder, MiniLMEmbedder, as_embedder, default_embedder
from sutram_core.memory.filters import Condition, matches, parse_filter
from sutram_core.memory.ranking import FusionWeights, fuse, recency_factor
from sutram_core.memory.records import (
    MemoryKind,
    MemoryRecord,
    NamespaceMatch,
    Provenance,
    SearchHit,
)
from sutram_core.memory.store import MemoryBackend, MemoryStore, SearchRequest, Write

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
