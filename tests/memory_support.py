"""Shared pieces of the memory tests: a fast deterministic embedder and store fixtures.

``WordHashEmbedder`` maps each word to a bucket (a stable hash) and normalizes the
counts: texts that share words are close, which is all the contract suite needs. The
retrieval-quality test uses the real default embedder instead.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from sutram_core.memory import MemoryStore

WEAVIATE_URL = os.environ.get("SUTRAM_WEAVIATE_URL")
MEMORY_BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("weaviate", marks=pytest.mark.skipif(
        not WEAVIATE_URL, reason="SUTRAM_WEAVIATE_URL is not set: no Weaviate server can be installed from the "
        "package registries here; see integrations/weaviate/README.md to run this suite against one")),
]


class WordHashEmbedder:
    """Bag of hashed words, 64 dimensions, as a plain callable ``texts -> vectors``."""

    dims = 64

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.strip(".,?!").encode()) % self.dims] += 1.0
            out[i, self.dims - 1] += 0.01  # no all-zero vector
        return out.tolist()


@contextmanager
def open_memory(backend: str, url: str, **kwargs: object) -> Iterator[MemoryStore]:
    """A MemoryStore on ``backend`` (a fresh collection per test for Weaviate)."""
    kwargs.setdefault("embedder", WordHashEmbedder())
    if backend == "weaviate":
        assert WEAVIATE_URL
        from sutram_core.backends.weaviate.memory import WeaviateMemoryBackend

        wv = WeaviateMemoryBackend.from_url(WEAVIATE_URL, collection=f"SutramTest{os.urandom(4).hex()}")
        store = MemoryStore(wv, **kwargs)  # type: ignore[arg-type]
        try:
            yield store
        finally:
            wv.drop()
            store.close()
        return
    store = MemoryStore.from_url(url, **kwargs)  # type: ignore[arg-type]
    try:
        yield store
    finally:
        store.close()


def memory_url(backend: str, tmp_path: Path) -> Iterator[str]:
    from tests.conftest import make_url

    if backend == "weaviate":
        yield WEAVIATE_URL or ""
        return
    yield from make_url(backend, tmp_path)
