"""Shared pieces of the memory tests: a fast deterministic embedder, a fresh memory database
per backend (:func:`memory_url`, behind the ``mem_backend``/``mem_url`` fixtures of
``conftest.py``) and a store on it (:func:`open_memory`).

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
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from sutram_core.memory import MemoryStore
from tests.conftest import MEMORY_BACKENDS, NO_WEAVIATE, WEAVIATE_URL, make_url

__all__ = ["MEMORY_BACKENDS", "WordHashEmbedder", "drop_collection", "memory_url", "open_memory"]


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
    """A MemoryStore on the database at ``url`` (from :func:`memory_url`; ``backend`` names it)."""
    kwargs.setdefault("embedder", WordHashEmbedder())
    store = MemoryStore.from_url(url, **kwargs)  # type: ignore[arg-type]
    try:
        yield store
    finally:
        store.close()


def memory_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield a URL to an empty memory database of ``backend``; clean it up afterwards. For
    Weaviate: the server's URL naming a collection of the test's own (``?collection=``),
    dropped afterwards, so every store a test opens on the URL sees the same memories."""
    if backend != "weaviate":
        yield from make_url(backend, tmp_path)
        return
    if not WEAVIATE_URL:
        pytest.skip(NO_WEAVIATE)
    url = f"{WEAVIATE_URL}{'&' if '?' in WEAVIATE_URL else '?'}collection=SutramTest{os.urandom(4).hex()}"
    try:
        yield url
    finally:
        drop_collection(url)


def drop_collection(url: str) -> None:
    """Delete the Weaviate collection a test URL names (every tenant's memories in it)."""
    import weaviate

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    with weaviate.connect_to_local(host=parts.hostname or "127.0.0.1", port=parts.port or 8080,
                                   grpc_port=int(query.get("grpc_port", 50051))) as client:
        client.collections.delete(query["collection"])
