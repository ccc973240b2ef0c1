"""The memory store: one engine over any backend, with sync and async entry points.

:class:`MemoryStore` holds the logic that is not I/O: validation, embedding, near-duplicate
merging, versions, supersession, TTL. A :class:`MemoryBackend` (SQL, Weaviate) stores rows
and runs searches. Every call names one tenant (or uses the store's bound tenant); no call
reads or writes across tenants.

>>> store = MemoryStore.from_url("sqlite:///.sutram/sutram.db", tenant="acme")   # doctest: +SKIP
>>> store.add(("users", "u1"), "Prefers green tea", kind="semantic")              # doctest: +SKIP
>>> store.search("what does the user drink?", namespace=("users", "u1"))          # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

try:
    import numpy as np
except ImportError as exc:  # the memory extra
    from sutram_core.errors import MissingDependencyError

    raise MissingDependencyError("numpy", "memory") from exc

from sutram_core.errors import InvalidMemoryError
from sutram_core.memory.embedders import Embedder, as_embedder, default_embedder
from sutram_core.memory.filters import Condition, parse_filter
from sutram_core.memory.ranking import FusionWeights
from sutram_core.memory.records import (
    MAX_TTL_SECONDS,
    SYSTEM_ROOT,
    MemoryKind,
    MemoryRecord,
    NamespaceMatch,
    Provenance,
    SearchHit,
    from_micros,
    now_micros,
    to_micros,
    validate_json,
    validate_key,
    validate_namespace,
    validate_page,
    validate_record,
    validate_ttl,
)
from sutram_core.tenancy import resolve_tenant

__all__ = ["MemoryBackend", "MemoryStore", "SearchRequest", "Write"]

T = TypeVar("T")
_MODES = ("hybrid", "vector", "keyword")


@dataclass
class Write:
    """One change applied by :meth:`MemoryBackend.apply`.

    ``op`` is "put" (replace the current record of the key, or insert), "version" (close
    the current record and insert the next version), "close" (set ``valid_to`` on the
    current record), "delete" (remove every version of the key) or "meta" (merge
    ``metadata`` into the current record's metadata, nothing else changes), or "add" (the
    record replaces the near-duplicate of the same namespace and kind whose cosine similarity
    is at least ``dedupe``, if there is one, else is inserted: decided inside the write, so
    concurrent adds of one fact keep one memory).
    """

    op: str
    namespace: tuple[str, ...]
    key: str
    record: MemoryRecord | None = None
    at: int = 0  # microseconds: the time of the change
    metadata: dict[str, Any] | None = None
    dedupe: float | None = None  # "add": the near-duplicate threshold


@dataclass
class SearchRequest:
    """A search as a backend receives it (validated; the query already embedded)."""

    namespace_prefix: tuple[str, ...] = ()
    exact_namespace: bool = False
    # leave out namespaces under SYSTEM_ROOT (set for a search without a namespace prefix)
    exclude_system: bool = False
    query: str | None = None
    vector: np.ndarray | None = None
    conditions: list[Condition] = field(default_factory=list)
    kinds: tuple[str, ...] = ()
    created_after: int | None = None
    created_before: int | None = None
    as_of: int | None = None
    limit: int = 10
    offset: int = 0
    mode: str = "hybrid"
    order: str = "recent"  # listings without a query: "recent" (updated, newest first) or "key"
    weights: FusionWeights = field(default_factory=FusionWeights)
    recency_half_life: float | None = None
    now: int = 0


class MemoryBackend(Protocol):
    """What a memory backend implements (all methods are sync; the engine offloads them)."""

    def apply(self, tenant: str, writes: Sequence[Write]) -> list[MemoryRecord | None]: ...

    def get(self, tenant: str, refs: Sequence[tuple[tuple[str, ...], str]], as_of: int | None,
            now: int) -> list[MemoryRecord | None]: ...

    def history(self, tenant: str, namespace: tuple[str, ...], key: str) -> list[MemoryRecord]: ...

    def search(self, tenant: str, request: SearchRequest) -> list[SearchHit]: ...

    def count(self, tenant: str, request: SearchRequest) -> int: ...

    def list_namespaces(self, tenant: str, conditions: Sequence[NamespaceMatch], max_depth: int | None,
                        limit: int, offset: int, now: int) -> list[tuple[str, ...]]: ...

    def refresh_ttl(self, tenant: str, ids: Sequence[str], now: int) -> None: ...

    def sweep(self, now: int) -> int: ...

    def tenants(self) -> list[str]: ...

    def close(self) -> None: ...


def _check_writes(items: Sequence[MemoryRecord] | Sequence[Write]) -> None:
    """Check every record and metadata of a write batch before anything is embedded or written."""
    for item in items:
        if isinstance(item, Write):
            if item.record is not None:
                validate_record(item.record)
            if item.metadata is not None:
                validate_json(item.metadata, "metadata")
        else:
            validate_record(item)


def _text_of(value: Mapping[str, Any], text: str | None) -> str:
    if text is not None:
        if not isinstance(text, str):
            raise InvalidMemoryError(f"a memory's text is a string, not {text!r}")
        return text
    return str(value.get("text") or value.get("content") or "") if isinstance(value, Mapping) else ""


class MemoryStore:
    """Persistent episodic, semantic and procedural memory with hybrid search.

    ``embedder`` is any embedder :func:`~sutram_core.memory.embedders.as_embedder` accepts;
    None means the offline default (MiniLM), ``False`` turns vectors off (keyword search
    still works). ``dedupe_threshold`` is the cosine similarity above which :meth:`add`
    updates an existing memory of the same namespace instead of adding one.
    """

    def __init__(
        self,
        backend: MemoryBackend,
        *,
        tenant: str | None = None,
        embedder: Any = None,
        dedupe_threshold: float | None = 0.95,
        weights: FusionWeights | None = None,
        owns_backend: bool = True,
    ) -> None:
        self.backend = backend
        self.tenant = resolve_tenant(None, tenant) if tenant is not None else None
        self.embedder: Embedder | None = (
            None if embedder is False else default_embedder() if embedder is None else as_embedder(embedder)
        )
        self.dedupe_threshold = dedupe_threshold
        self.weights = weights or FusionWeights()
        self._owns_backend = owns_backend

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> MemoryStore:
        """A store over the database at ``url`` (SQLite or PostgreSQL; default ``SUTRAM_URL``),
        or over Weaviate for an ``http(s)://`` URL."""
        if url and url.split(":", 1)[0].lower() in ("http", "https", "weaviate"):
            from sutram_core.backends.weaviate.memory import WeaviateMemoryBackend

            return cls(WeaviateMemoryBackend.from_url(url), **kwargs)
        from sutram_core.backends.sql.database import Database
        from sutram_core.backends.sql.memory import SqlMemoryBackend

        return cls(SqlMemoryBackend(Database(url)), **kwargs)

    def setup(self) -> None:
        """Create or upgrade what the backend needs (idempotent; every call does it on first
        use anyway). For code that sets a store up ahead of traffic, as LangGraph's do."""
        setup = getattr(self.backend, "setup", None)
        if setup is not None:
            setup()

    def close(self) -> None:
        """Release the backend (when this store created it)."""
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tenant(self, tenant: str | None) -> str:
        return resolve_tenant(self.tenant, tenant)

    async def _offload(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        offload = getattr(self.backend, "offload", None)
        if offload is not None:
            return await offload(fn, *args, **kwargs)  # type: ignore[no-any-return]
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    # -- building records (no I/O) -------------------------------------------------------

    def make_record(
        self, namespace: Sequence[str], key: str | None, value: Mapping[str, Any] | None, text: str | None,
        kind: MemoryKind | str, metadata: Mapping[str, Any] | None, provenance: Provenance | Mapping[str, Any] | None,
        ttl_seconds: float | None, valid_from: datetime | float | None,
    ) -> MemoryRecord:
        """A validated record, not yet stored (for :meth:`put_many` and :meth:`apply`)."""
        ns = validate_namespace(namespace)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise InvalidMemoryError(f"a memory's value is a JSON object (a dict), not {type(value).__name__}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidMemoryError(f"metadata is a dict, not {type(metadata).__name__}")
        prov = provenance if isinstance(provenance, Provenance) else Provenance.from_dict(provenance)
        rec = MemoryRecord(
            namespace=ns, key=validate_key(key) if key is not None else uuid.uuid4().hex, value=dict(value),
            text=_text_of(value, text), kind=MemoryKind.parse(kind), metadata=dict(metadata or {}),
            provenance=prov, ttl_seconds=validate_ttl(ttl_seconds),
        )
        if valid_from is not None:
            rec.valid_from = from_micros(to_micros(valid_from))
        return validate_record(rec)

    def _vector_texts(self, rec: MemoryRecord) -> list[str]:
        """The texts embedded for ``rec``, one vector each: its ``field_texts`` when the backend
        keeps several vectors per record (the record then scores by its best one), else its
        ``text``."""
        if rec.field_texts is not None and getattr(self.backend, "field_vectors", False):
            return [t for t in rec.field_texts if t]
        return [rec.text] if rec.text else []

    def _embed_texts(self, records: Sequence[MemoryRecord]) -> list[str]:
        return [t for r in records for t in self._vector_texts(r)]

    def _embed_into(self, records: Sequence[MemoryRecord], vectors: np.ndarray | None) -> None:
        if vectors is None:
            return
        at = 0
        for rec in records:
            n = len(self._vector_texts(rec))
            # one text: a vector; several: a (texts x dims) array, one row per text
            rec.embedding = cast(Sequence[Any], vectors[at] if n == 1 else vectors[at: at + n])
            at += n

    def _to_embed(self, records: Sequence[MemoryRecord]) -> list[MemoryRecord]:
        if self.embedder is None:
            return []
        return [r for r in records if r.embedding is None and self._vector_texts(r)]

    def _dedupe_request(self, rec: MemoryRecord) -> SearchRequest | None:
        if self.dedupe_threshold is None or rec.embedding is None:
            return None
        return SearchRequest(namespace_prefix=rec.namespace, exact_namespace=True,
                             vector=np.asarray(rec.embedding, dtype=np.float32), kinds=(rec.kind.value,),
                             limit=1, mode="vector", now=now_micros())

    def _search_request(
        self, query: str | None, namespace: Sequence[str], filter: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None, kind: MemoryKind | str | Sequence[MemoryKind | str] | None,
        created_after: datetime | float | None, created_before: datetime | float | None,
        as_of: datetime | float | None, limit: int, offset: int, mode: str,
        recency_half_life: float | None, order: str = "recent",
    ) -> SearchRequest:
        if query is not None and not isinstance(query, str):
            raise InvalidMemoryError(f"a search query is a string, not {query!r}")
        validate_page(limit=limit, offset=offset)
        if recency_half_life is not None and (
                isinstance(recency_half_life, bool) or not isinstance(recency_half_life, (int, float))
                or not 0 < recency_half_life <= MAX_TTL_SECONDS):
            raise InvalidMemoryError(
                f"recency_half_life is a number of seconds greater than 0 and at most {MAX_TTL_SECONDS} "
                f"(100 years), not {recency_half_life!r}")
        if mode not in _MODES:
            raise InvalidMemoryError(f"unknown search mode {mode!r}: use one of {_MODES}")
        if order not in ("recent", "key"):
            raise InvalidMemoryError(f"unknown order {order!r}: use 'recent' or 'key'")
        kinds: tuple[str, ...] = ()
        if kind is not None:
            kinds = tuple(MemoryKind.parse(k).value for k in ([kind] if isinstance(kind, (str, MemoryKind)) else kind))
        if self.embedder is None and mode == "vector" and query:
            raise InvalidMemoryError("vector search needs an embedder; this store was opened with embedder=False")
        prefix = validate_namespace(namespace, allow_empty=True)
        return SearchRequest(
            namespace_prefix=prefix, exclude_system=not prefix, query=query or None,
            conditions=parse_filter(filter, "value") + parse_filter(metadata, "metadata"), kinds=kinds,
            created_after=to_micros(created_after) if created_after is not None else None,
            created_before=to_micros(created_before) if created_before is not None else None,
            as_of=to_micros(as_of) if as_of is not None else None, limit=limit, offset=offset,
            mode=mode if self.embedder is not None or mode == "keyword" else "keyword", order=order,
            weights=self.weights, recency_half_life=recency_half_life, now=now_micros(),
        )

    # -- writes ------------------------------------------------------------------------------

    def put(
        self, namespace: Sequence[str], key: str, value: Mapping[str, Any] | None = None, *,
        text: str | None = None, kind: MemoryKind | str = MemoryKind.SEMANTIC,
        metadata: Mapping[str, Any] | None = None, provenance: Provenance | Mapping[str, Any] | None = None,
        ttl_seconds: float | None = None, valid_from: datetime | float | None = None,
        embedding: Sequence[float] | None = None, tenant: str | None = None,
    ) -> MemoryRecord:
        """Store a memory under ``key``: replaces the current record of that key, or, for a
        procedural memory, adds the next version (the earlier ones stay in :meth:`history`)."""
        rec = self.make_record(namespace, key, value, text, kind, metadata, provenance, ttl_seconds, valid_from)
        rec.embedding = embedding
        return self.put_many([rec], tenant=tenant)[0]

    def put_many(self, records: Sequence[MemoryRecord], *, tenant: str | None = None) -> list[MemoryRecord]:
        """Store several records in one transaction (embedding those without a vector in one call)."""
        t = self._tenant(tenant)
        _check_writes(records)
        todo = self._to_embed(records)
        if todo and self.embedder is not None:
            self._embed_into(todo, self.embedder.embed_documents(self._embed_texts(todo)))
        return self._apply_puts(t, records)

    async def aput_many(self, records: Sequence[MemoryRecord], *, tenant: str | None = None) -> list[MemoryRecord]:
        """Async twin of :meth:`put_many`."""
        t = self._tenant(tenant)
        _check_writes(records)
        todo = self._to_embed(records)
        if todo and self.embedder is not None:
            self._embed_into(todo, await self.embedder.aembed_documents(self._embed_texts(todo)))
        return await self._offload(self._apply_puts, t, records)

    async def aput(self, namespace: Sequence[str], key: str, value: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> MemoryRecord:
        """Async twin of :meth:`put`."""
        tenant = kwargs.pop("tenant", None)
        embedding = kwargs.pop("embedding", None)
        rec = self.make_record(namespace, key, value, kwargs.pop("text", None), kwargs.pop("kind", MemoryKind.SEMANTIC),
                           kwargs.pop("metadata", None), kwargs.pop("provenance", None),
                           kwargs.pop("ttl_seconds", None), kwargs.pop("valid_from", None))
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        rec.embedding = embedding
        return (await self.aput_many([rec], tenant=tenant))[0]

    def _apply_puts(self, tenant: str, records: Sequence[MemoryRecord]) -> list[MemoryRecord]:
        now = now_micros()
        writes = [Write("version" if r.kind is MemoryKind.PROCEDURAL else "put", r.namespace, r.key, r, now)
                  for r in records]
        return [r for r in self.backend.apply(tenant, writes) if r is not None]

    def add(
        self, namespace: Sequence[str], text: str, *, value: Mapping[str, Any] | None = None,
        kind: MemoryKind | str = MemoryKind.SEMANTIC, metadata: Mapping[str, Any] | None = None,
        provenance: Provenance | Mapping[str, Any] | None = None, ttl_seconds: float | None = None,
        tenant: str | None = None,
    ) -> MemoryRecord:
        """Remember ``text`` under a new key, or update the near-duplicate memory of the same
        namespace and kind (cosine similarity at or above ``dedupe_threshold``)."""
        rec = self.make_record(namespace, None, {"text": text, **(value or {})}, text, kind, metadata, provenance,
                           ttl_seconds, None)
        t = self._tenant(tenant)
        if self.embedder is not None:
            rec.embedding = self.embedder.embed_documents([rec.text])[0]
        return self._add(t, rec)

    async def aadd(self, namespace: Sequence[str], text: str, **kwargs: Any) -> MemoryRecord:
        """Async twin of :meth:`add`."""
        tenant = kwargs.pop("tenant", None)
        value = kwargs.pop("value", None)
        rec = self.make_record(namespace, None, {"text": text, **(value or {})}, text,
                           kwargs.pop("kind", MemoryKind.SEMANTIC), kwargs.pop("metadata", None),
                           kwargs.pop("provenance", None), kwargs.pop("ttl_seconds", None), None)
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        t = self._tenant(tenant)
        if self.embedder is not None:
            rec.embedding = (await self.embedder.aembed_documents([rec.text]))[0]
        return await self._offload(self._add, t, rec)

    def _add(self, tenant: str, rec: MemoryRecord) -> MemoryRecord:
        request = self._dedupe_request(rec)
        if request is not None and self.dedupe_threshold is not None and getattr(self.backend, "serialized_add", False):
            # the backend looks for the near-duplicate inside the write, one add at a time
            out = self.backend.apply(tenant, [Write("add", rec.namespace, rec.key, rec, now_micros(),
                                                    dedupe=self.dedupe_threshold)])[0]
            assert out is not None
            return out
        if request is not None and self.dedupe_threshold is not None:
            hits = self.backend.search(tenant, request)
            if hits and (hits[0].vector_score or 0.0) >= self.dedupe_threshold:
                rec = replace(rec, key=hits[0].record.key)
        return self._apply_puts(tenant, [rec])[0]

    def supersede(
        self, old: tuple[Sequence[str], str] | MemoryRecord, new: MemoryRecord | str, *,
        key: str | None = None, tenant: str | None = None, **fields: Any,
    ) -> MemoryRecord:
        """Close the fact ``old`` (it stays readable "as of" earlier times) and store ``new``
        in its namespace, in one transaction. ``new`` is a record or the new fact's text."""
        t = self._tenant(tenant)
        old_ns, old_key = (old.namespace, old.key) if isinstance(old, MemoryRecord) else (
            validate_namespace(old[0]), validate_key(old[1]))
        if isinstance(new, str):
            new = self.make_record(old_ns, key, {"text": new, **fields.pop("value", {})}, new,
                               fields.pop("kind", MemoryKind.SEMANTIC), fields.pop("metadata", None),
                               fields.pop("provenance", None), fields.pop("ttl_seconds", None), None)
        if fields:
            raise TypeError(f"unexpected arguments {sorted(fields)}")
        current = self.backend.get(t, [(old_ns, old_key)], None, now_micros())[0]
        if current is None:
            raise InvalidMemoryError(f"nothing to supersede: no current memory {old_key!r} in {old_ns!r}")
        if (new.namespace, new.key) == (old_ns, old_key):
            new = replace(new, key=uuid.uuid4().hex)
        new.supersedes = current.id
        if self.embedder is not None and new.embedding is None and new.text:
            new.embedding = self.embedder.embed_documents([new.text])[0]
        now = now_micros()
        out = self.backend.apply(t, [Write("close", old_ns, old_key, at=now), Write("put", new.namespace, new.key, new, now)])
        result = out[1]
        assert result is not None
        return result

    def delete(self, namespace: Sequence[str], key: str, *, tenant: str | None = None) -> None:
        """Remove every version of a memory (for erasure; to retire a fact use :meth:`supersede`)."""
        t = self._tenant(tenant)
        self.backend.apply(t, [Write("delete", validate_namespace(namespace), validate_key(key), at=now_micros())])

    async def adelete(self, namespace: Sequence[str], key: str, *, tenant: str | None = None) -> None:
        """Async twin of :meth:`delete`."""
        await self._offload(self.delete, namespace, key, tenant=tenant)

    def apply(self, writes: Sequence[Write], *, tenant: str | None = None) -> list[MemoryRecord | None]:
        """Apply raw writes in one transaction (embedding the records that need it)."""
        t = self._tenant(tenant)
        _check_writes(writes)
        todo = self._to_embed([w.record for w in writes if w.record is not None])
        if todo and self.embedder is not None:
            self._embed_into(todo, self.embedder.embed_documents(self._embed_texts(todo)))
        return self.backend.apply(t, writes)

    async def aapply(self, writes: Sequence[Write], *, tenant: str | None = None) -> list[MemoryRecord | None]:
        """Async twin of :meth:`apply`."""
        t = self._tenant(tenant)
        _check_writes(writes)
        todo = self._to_embed([w.record for w in writes if w.record is not None])
        if todo and self.embedder is not None:
            self._embed_into(todo, await self.embedder.aembed_documents(self._embed_texts(todo)))
        return await self._offload(self.backend.apply, t, writes)

    # -- reads ---------------------------------------------------------------------------------

    def get(self, namespace: Sequence[str], key: str, *, as_of: datetime | float | None = None,
            refresh_ttl: bool = False, tenant: str | None = None) -> MemoryRecord | None:
        """The current record of a key (or the one valid at ``as_of``); None if there is none."""
        return self.get_many([(namespace, key)], as_of=as_of, refresh_ttl=refresh_ttl, tenant=tenant)[0]

    def get_many(self, refs: Sequence[tuple[Sequence[str], str]], *, as_of: datetime | float | None = None,
                 refresh_ttl: bool = False, tenant: str | None = None) -> list[MemoryRecord | None]:
        """Several :meth:`get` calls in one round trip."""
        t = self._tenant(tenant)
        checked = [(validate_namespace(ns), validate_key(k)) for ns, k in refs]
        now = now_micros()
        found = self.backend.get(t, checked, to_micros(as_of) if as_of is not None else None, now)
        if refresh_ttl:
            self._refresh(t, [r for r in found if r is not None], now)
        return found

    async def aget(self, namespace: Sequence[str], key: str, **kwargs: Any) -> MemoryRecord | None:
        """Async twin of :meth:`get`."""
        return await self._offload(self.get, namespace, key, **kwargs)

    def _refresh(self, tenant: str, records: Sequence[MemoryRecord], now: int) -> None:
        ids = [r.id for r in records if r.ttl_seconds]
        if ids:
            self.backend.refresh_ttl(tenant, ids, now)

    def history(self, namespace: Sequence[str], key: str, *, tenant: str | None = None) -> list[MemoryRecord]:
        """Every version of a key, oldest first (closed ones included)."""
        return self.backend.history(self._tenant(tenant), validate_namespace(namespace), validate_key(key))

    def search(
        self, query: str | None = None, *, namespace: Sequence[str] = (), filter: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None, kind: MemoryKind | str | Sequence[MemoryKind | str] | None = None,
        created_after: datetime | float | None = None, created_before: datetime | float | None = None,
        as_of: datetime | float | None = None, limit: int = 10, offset: int = 0, mode: str = "hybrid",
        recency_half_life: float | None = None, refresh_ttl: bool = False, order: str = "recent",
        tenant: str | None = None,
    ) -> list[SearchHit]:
        """Search memories: hybrid (vector + keyword, fused), or ``mode="vector"``/``"keyword"``.

        Without a query, lists the matching records, most recently updated first (or by key
        with ``order="key"``). ``recency_half_life`` (seconds) discounts older memories.
        Without a ``namespace``, Sutram's own memories (under ``("sutram",)``: run outcomes)
        are left out; ``namespace=("sutram", "runs")`` searches them.
        """
        t = self._tenant(tenant)
        request = self._search_request(query, namespace, filter, metadata, kind, created_after, created_before,
                                       as_of, limit, offset, mode, recency_half_life, order)
        if request.query and request.mode != "keyword" and self.embedder is not None:
            request.vector = self.embedder.embed_query(request.query)
        hits = self.backend.search(t, request)
        if refresh_ttl:
            self._refresh(t, [h.record for h in hits], request.now)
        return hits

    async def asearch(self, query: str | None = None, **kwargs: Any) -> list[SearchHit]:
        """Async twin of :meth:`search`."""
        t = self._tenant(kwargs.pop("tenant", None))
        refresh = kwargs.pop("refresh_ttl", False)
        fields = dict(namespace=(), filter=None, metadata=None, kind=None, created_after=None, created_before=None,
                      as_of=None, limit=10, offset=0, mode="hybrid", recency_half_life=None, order="recent")
        unknown = set(kwargs) - set(fields)
        if unknown:
            raise TypeError(f"unexpected arguments {sorted(unknown)}")
        fields.update(kwargs)
        request = self._search_request(query, **fields)  # type: ignore[arg-type]
        if request.query and request.mode != "keyword" and self.embedder is not None:
            request.vector = await self.embedder.aembed_query(request.query)
        hits = await self._offload(self.backend.search, t, request)
        if refresh:
            await self._offload(self._refresh, t, [h.record for h in hits], request.now)
        return hits

    def count(self, namespace: Sequence[str] = (), *, filter: Mapping[str, Any] | None = None,
              metadata: Mapping[str, Any] | None = None, kind: MemoryKind | str | None = None,
              tenant: str | None = None) -> int:
        """How many current records match (namespace prefix and filters as in :meth:`search`)."""
        request = self._search_request(None, namespace, filter, metadata, kind, None, None, None, 0, 0, "hybrid",
                                       None)
        return self.backend.count(self._tenant(tenant), request)

    def set_metadata(self, refs: Sequence[tuple[Sequence[str], str]], metadata: Mapping[str, Any], *,
                     tenant: str | None = None) -> None:
        """Merge ``metadata`` into the current records ``refs`` in one transaction (no re-embedding)."""
        if not isinstance(metadata, Mapping):
            raise InvalidMemoryError(f"metadata is a dict, not {type(metadata).__name__}")
        validate_json(metadata, "metadata")
        now = now_micros()
        writes = [Write("meta", validate_namespace(ns), validate_key(k), at=now, metadata=dict(metadata))
                  for ns, k in refs]
        if writes:
            self.backend.apply(self._tenant(tenant), writes)

    def list(self, namespace: Sequence[str] = (), **kwargs: Any) -> builtins.list[MemoryRecord]:
        """The records under a namespace prefix (filters as in :meth:`search`), newest first."""
        return [h.record for h in self.search(None, namespace=namespace, **kwargs)]

    def list_namespaces(
        self, *, prefix: Sequence[str] | None = None, suffix: Sequence[str] | None = None,
        max_depth: int | None = None, limit: int = 100, offset: int = 0, tenant: str | None = None,
    ) -> builtins.list[tuple[str, ...]]:
        """The namespaces holding current memories, sorted; ``"*"`` in a prefix or suffix matches any label.

        Sutram's own namespaces (``("sutram", ...)``) are listed only for a prefix that starts
        with ``"sutram"``."""
        conditions = [NamespaceMatch(kind, validate_namespace(path, allow_empty=True))
                      for kind, path in (("prefix", prefix), ("suffix", suffix)) if path]
        if not any(c.kind == "prefix" and c.path[:1] == (SYSTEM_ROOT,) for c in conditions):
            conditions.append(NamespaceMatch("not_prefix", (SYSTEM_ROOT,)))
        if max_depth is not None and (not isinstance(max_depth, int) or max_depth < 1):
            raise InvalidMemoryError(f"max_depth is an integer >= 1, not {max_depth!r}")
        validate_page(limit=limit, offset=offset)
        return self.backend.list_namespaces(self._tenant(tenant), conditions, max_depth, limit, offset, now_micros())

    def sweep_expired(self) -> int:
        """Delete the memories whose TTL has passed (every tenant); return how many."""
        return self.backend.sweep(now_micros())
