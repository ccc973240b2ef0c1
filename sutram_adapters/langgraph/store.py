"""``SutramStore``: LangGraph's long-term memory store (``BaseStore``) on Sutram memory.

One line in an existing app::

    with SutramStore.from_url("sqlite:///app.db", tenant="acme") as store:
        graph = builder.compile(checkpointer=saver, store=store)

Items are Sutram memories (kind ``semantic``): the namespace and key are the item's, the
value is stored as JSON, the text of the index fields feeds both keyword and vector
search. With no ``index`` the offline default embedder (MiniLM, 384 dimensions) is used,
so ``store.search(ns, query=...)`` works out of the box and needs no SQLite extension;
``index=False`` turns vectors off and keyword search still works. TTLs are in minutes, as
in LangGraph; expired items are never returned, and a sweeper deletes them.

Namespaces under ``("sutram",)`` hold Sutram's own memories (the durable runner's run
outcomes, ``("sutram", "runs", graph)``): a search or ``list_namespaces`` with an empty
prefix leaves them out, a prefix starting with ``"sutram"`` reads them, and writes there
are refused, as LangGraph refuses writes under ``("langgraph",)``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal
from uuid import UUID

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    validate_op_namespace,
)
from langgraph.store.base.embed import get_text_at_path, tokenize_path

from sutram_adapters.langchain.handler import SutramCallbackHandler
from sutram_adapters.langgraph._awaitable import Done, Stopped, SweeperThread
from sutram_core.config import url_of_conn_string
from sutram_core.errors import ConfigurationError
from sutram_core.memory import (
    MemoryKind,
    MemoryRecord,
    MemoryStore,
    NamespaceMatch,
    SearchHit,
    Write,
)
from sutram_core.memory.records import SYSTEM_ROOT, Provenance, now_micros, validate_ttl

__all__ = ["SutramStore"]


def _summary(result: Result) -> Any:
    """What a memory span records as output: the keys found (not the values, which can be large)."""
    if isinstance(result, list):
        return [f"{'/'.join(r.namespace)}:{r.key}" if isinstance(r, Item) else "/".join(r) for r in result]
    if isinstance(result, Item):
        return f"{'/'.join(result.namespace)}:{result.key}"
    return result


def _item(rec: MemoryRecord) -> Item:
    assert rec.created_at is not None and rec.updated_at is not None
    return Item(value=rec.value, key=rec.key, namespace=rec.namespace, created_at=rec.created_at,
                updated_at=rec.updated_at)


def _search_item(hit: SearchHit) -> SearchItem:
    rec = hit.record
    assert rec.created_at is not None and rec.updated_at is not None
    return SearchItem(namespace=rec.namespace, key=rec.key, value=rec.value, created_at=rec.created_at,
                      updated_at=rec.updated_at, score=hit.score)


def _current_config() -> Any:
    from langchain_core.runnables.config import var_child_runnable_config

    return var_child_runnable_config.get()


def _tracing_targets() -> list[tuple[SutramCallbackHandler, UUID]]:
    """The Sutram handlers tracing the graph node this call runs in, with the node's run id."""
    config = _current_config()
    callbacks = config.get("callbacks") if config else None
    parent = getattr(callbacks, "parent_run_id", None)
    if callbacks is None or parent is None:
        return []
    handlers = getattr(callbacks, "handlers", None) or []
    return [(h, parent) for h in handlers if isinstance(h, SutramCallbackHandler)]


def _describe(op: Op) -> tuple[str, str, dict[str, Any]]:
    if isinstance(op, GetOp):
        return "search_memory", "memory get", {"namespace": list(op.namespace), "key": op.key}
    if isinstance(op, SearchOp):
        return "search_memory", "memory search", {"namespace_prefix": list(op.namespace_prefix), "query": op.query,
                                                   "filter": op.filter, "limit": op.limit}
    if isinstance(op, ListNamespacesOp):
        return "search_memory", "memory list_namespaces", {"max_depth": op.max_depth, "limit": op.limit}
    assert isinstance(op, PutOp)
    if op.value is None:
        return "delete_memory", "memory delete", {"namespace": list(op.namespace), "key": op.key}
    return "update_memory", "memory put", {"namespace": list(op.namespace), "key": op.key, "value": op.value}


def _provenance(opened: Sequence[tuple[SutramCallbackHandler, UUID | None]]) -> Provenance | None:
    """Where a write made now comes from: the thread and checkpoint of the LangGraph node it
    runs in (the checkpoint its step started from), the run (the durable run, else the
    Sutram trace) and the memory span that records it. None outside any graph or run."""
    config = _current_config()
    if not config:
        return None
    conf = config.get("configurable") or {}
    meta = config.get("metadata") or {}
    ns = str(conf.get("checkpoint_ns") or meta.get("langgraph_checkpoint_ns") or "")
    checkpoints = conf.get("checkpoint_map")
    # the node's own graph is the namespace before its last "node:task" segment
    checkpoint = checkpoints.get(ns.rpartition("|")[0]) if isinstance(checkpoints, dict) else None
    run = conf.get("sutram_run_id") or meta.get("sutram_run_id")
    span = next(((h, rid) for h, rid in opened if rid is not None), None)
    if run is None and span is not None:
        run = span[0].trace_of(span[1])
    if run is None and config.get("run_id") is not None:
        run = config["run_id"]
    prov = Provenance.from_dict({"run_id": run, "thread_id": conf.get("thread_id") or meta.get("thread_id"),
                                 "checkpoint_id": checkpoint or conf.get("checkpoint_id"),
                                 "span_id": span[1] if span is not None else None})
    return prov if prov.as_dict() else None


@contextmanager
def _memory_span(ops: Sequence[Op]) -> Iterator[dict[str, Any]]:
    """A memory span under the current graph node for ``ops`` (all reads of one kind, or the
    batch's writes), in every Sutram trace that records that node; nothing when untraced.
    ``info["provenance"]`` says where writes made inside it come from (see :func:`_provenance`)."""
    targets = _tracing_targets()
    info: dict[str, Any] = {}
    if not targets or not ops:
        info["provenance"] = _provenance(()) if ops and isinstance(ops[0], PutOp) else None
        yield info
        return
    operation, name, inputs = _describe(ops[0])
    if len(ops) > 1:
        name, inputs = f"{name} x{len(ops)}", {"ops": [_describe(o)[2] for o in ops]}
    opened = [(h, h.start_memory_op(parent, operation, name, inputs)) for h, parent in targets]
    info["provenance"] = _provenance(opened) if isinstance(ops[0], PutOp) else None
    try:
        yield info
    except BaseException as exc:
        for handler, run_id in opened:
            if run_id is not None:
                handler.end_memory_op(run_id, error=exc)
        raise
    for handler, run_id in opened:
        if run_id is not None:
            handler.end_memory_op(run_id, info.get("outputs"), attributes=info.get("attributes"))


def _index_fields(index: IndexConfig) -> list[str]:
    """The fields an ``IndexConfig`` embeds: ``fields``, or SqliteStore's ``text_fields``;
    a ``distance_type`` other than cosine is refused (see the README's SutramStore section)."""
    config: dict[str, Any] = dict(index)
    distance = config.get("distance_type", "cosine")
    if distance != "cosine":
        raise ConfigurationError(
            f"distance_type {distance!r} is not supported: SutramStore scores by cosine similarity on every "
            "backend; leave distance_type out or set it to 'cosine' (for normalized embeddings, l2 and "
            "inner_product rank the same way)")
    fields = config.get("fields") or config.get("text_fields") or ["$"]
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, (list, tuple)) or not all(isinstance(f, str) and f for f in fields):
        raise ConfigurationError(f"index fields are a list of field paths such as ['title', 'tags[*]'], not {fields!r}")
    return list(fields)


class _EmbedderEmbeddings(Embeddings):
    """Sutram's embedder (the offline default) as the LangChain ``Embeddings`` that
    LangGraph's stores expose as ``store.embeddings``."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self._embedder.embed_documents(texts)]

    def embed_query(self, text: str) -> list[float]:
        return list(map(float, self._embedder.embed_query(text)))

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in await self._embedder.aembed_documents(texts)]

    async def aembed_query(self, text: str) -> list[float]:
        return list(map(float, await self._embedder.aembed_query(text)))


def _tokenized(fields: Sequence[str]) -> list[tuple[str, Any]]:
    # "$" (the whole value) is passed to get_text_at_path as is, as LangGraph's stores do
    return [(f, f if f == "$" else tokenize_path(f)) for f in fields]


class SutramStore(BaseStore):
    """A LangGraph ``BaseStore`` over Sutram memory (see the module docstring).

    Args:
        url: the database (default ``SUTRAM_URL``, else the embedded SQLite file).
        tenant: every item of this store belongs to this tenant (default ``"default"``).
        index: LangGraph's ``IndexConfig`` (``embed``, ``dims``, ``fields``); None uses the
            offline default embedder over the whole value; False stores no vectors.
        ttl: LangGraph's ``TTLConfig`` (``default_ttl`` minutes, ``refresh_on_read``,
            ``sweep_interval_minutes``).
    """

    supports_ttl: bool = True

    def __init__(
        self, url: str | None = None, *, tenant: str | None = None,
        index: IndexConfig | Literal[False] | None = None, ttl: TTLConfig | None = None,
        memory: MemoryStore | None = None,
    ) -> None:
        fields = ["$"]
        embedder: Any = None
        self.embeddings: Embeddings | None = None
        if index is False:
            embedder = False
        elif index:
            fields = _index_fields(index)
            embed = index.get("embed")
            embedder = self.embeddings = ensure_embeddings(embed) if embed is not None else None
        self.index_config = index or None
        self._fields = _tokenized(fields)
        self.ttl_config = ttl
        if memory is None:
            memory = MemoryStore.from_url(url, tenant=tenant or "default", embedder=embedder, dedupe_threshold=None)
            self._owns = True
        else:
            self._owns = False
        self.memory = memory
        if self.embeddings is None and memory.embedder is not None:
            self.embeddings = _EmbedderEmbeddings(memory.embedder)
        self._sweeper: SweeperThread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_url(cls, url: str | None = None, *, tenant: str | None = None,
                 index: IndexConfig | Literal[False] | None = None, ttl: TTLConfig | None = None) -> SutramStore:
        """A store for ``url``, usable as ``with`` or ``async with`` context manager."""
        return cls(url, tenant=tenant, index=index, ttl=ttl)

    @classmethod
    def from_conn_string(cls, conn_string: str, *, tenant: str | None = None,
                         index: IndexConfig | Literal[False] | None = None, ttl: TTLConfig | None = None) -> SutramStore:
        """LangGraph's name for :meth:`from_url`: ``with SutramStore.from_conn_string("app.db") as store``.
        ``conn_string`` is a Sutram URL or, as for ``SqliteStore``, a SQLite file's path."""
        return cls(url_of_conn_string(conn_string), tenant=tenant, index=index, ttl=ttl)

    def for_tenant(self, tenant: str) -> SutramStore:
        """A store bound to ``tenant`` that shares this one's database and embedder."""
        mem = MemoryStore(self.memory.backend, tenant=tenant, embedder=self.memory.embedder or False,
                          dedupe_threshold=None, owns_backend=False)
        clone = SutramStore(memory=mem, ttl=self.ttl_config)
        clone.index_config, clone._fields = self.index_config, self._fields
        return clone

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> SutramStore:
        if self.ttl_config and self.ttl_config.get("sweep_interval_minutes"):
            self.start_ttl_sweeper()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SutramStore:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the sweeper and release the database (when this store opened it)."""
        self.stop_ttl_sweeper()
        if self._owns:
            self.memory.close()

    def sweep_ttl(self) -> int:
        """Delete expired items now; return how many."""
        return self.memory.sweep_expired()

    def setup(self) -> Done[None]:
        """Create or upgrade the schema (idempotent; also done on first use), as
        ``PostgresStore.setup()`` does. Awaitable too, so ``await store.setup()`` written for
        ``AsyncPostgresStore`` works unchanged."""
        self.memory.setup()
        return Done(None)

    def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> SweeperThread:
        """Sweep expired items every ``sweep_interval_minutes`` (default from the TTL config, else 5)
        on a daemon thread. The thread is returned, and is awaitable, so ``await
        store.start_ttl_sweeper()`` written for ``AsyncPostgresStore`` works unchanged."""
        if self._sweeper is not None and self._sweeper.is_alive():
            return self._sweeper
        minutes = sweep_interval_minutes or (self.ttl_config or {}).get("sweep_interval_minutes") or 5
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(float(minutes) * 60):
                try:
                    self.sweep_ttl()
                except Exception:  # keep sweeping; the next round retries
                    continue

        self._sweeper = SweeperThread(loop)
        self._sweeper.start()
        return self._sweeper

    def stop_ttl_sweeper(self, timeout: float | None = None) -> Stopped:
        """Stop the sweeper; true once it has stopped (awaitable, as ``AsyncPostgresStore``'s is)."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout)
            return Stopped(not self._sweeper.is_alive())
        return Stopped(True)

    # -- translation (no I/O) ---------------------------------------------------------------

    def _texts(self, value: dict[str, Any], index: Literal[False] | list[str] | None) -> list[str]:
        """The texts of the index fields (each element of a ``path[*]`` field apart), each
        embedded on its own as LangGraph's stores do: an item scores by its best field."""
        if index is False:
            return []
        paths = self._fields if index is None else _tokenized(index)
        texts: list[str] = []
        for _, tokens in paths:
            texts.extend(get_text_at_path(value, tokens))
        return [t for t in texts if t]

    def _text(self, value: dict[str, Any], index: Literal[False] | list[str] | None) -> str:
        # keyword search reads all the fields as one text
        return "\n".join(self._texts(value, index))

    def _refresh(self, flag: bool | None) -> bool:
        if flag is not None:
            return flag
        return bool((self.ttl_config or {}).get("refresh_on_read", True))

    def _writes(self, puts: Sequence[PutOp], provenance: Provenance | None = None) -> list[Write]:
        now = now_micros()
        last: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in puts:  # LangGraph: the last put of a key in a batch wins
            last[(op.namespace, op.key)] = op
        writes = []
        for (ns, key), op in last.items():
            if op.value is None:
                writes.append(Write("delete", ns, key, at=now))
                continue
            ttl = op.ttl if op.ttl is not None else (self.ttl_config or {}).get("default_ttl")
            # LangGraph counts TTLs in minutes: checked (and reported) in minutes
            ttl_seconds = validate_ttl(ttl, "ttl (minutes)", scale=60) if ttl is not None else None
            rec = self.memory.make_record(ns, key, op.value, self._text(dict(op.value), op.index), MemoryKind.SEMANTIC,
                                          None, provenance, ttl_seconds, None)
            rec.field_texts = self._texts(dict(op.value), op.index)
            writes.append(Write("put", ns, key, rec, now))
        return writes

    # -- batch ------------------------------------------------------------------------------

    @staticmethod
    def _split(ops: Iterable[Op]) -> tuple[list[Op], list[tuple[int, Op]], list[PutOp]]:
        """Validate every op first (nothing runs if one is bad); reads in order, puts apart
        (LangGraph's stores apply a batch's puts after its reads)."""
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
            if not isinstance(op, (GetOp, SearchOp, ListNamespacesOp, PutOp)):
                raise ValueError(f"unknown operation {op!r}")
            if isinstance(op, PutOp) and op.namespace[:1] == (SYSTEM_ROOT,):
                raise InvalidNamespaceError(
                    f"namespace {op.namespace!r}: namespaces under {SYSTEM_ROOT!r} hold Sutram's own memories "
                    "(run outcomes) and are read-only through SutramStore; read them with a prefix such as "
                    f"({SYSTEM_ROOT!r}, 'runs'), manage them with sutram_core.memory.MemoryStore")
        reads = [(i, op) for i, op in enumerate(ops) if not isinstance(op, PutOp)]
        return ops, reads, [op for op in ops if isinstance(op, PutOp)]

    def _read(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            rec = self.memory.get(op.namespace, op.key, refresh_ttl=self._refresh(op.refresh_ttl))
            return _item(rec) if rec is not None else None
        if isinstance(op, SearchOp):
            return self._search(op, self.memory.search(**self._search_args(op)))
        assert isinstance(op, ListNamespacesOp)
        return self._list_namespaces(op)

    async def _aread(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            rec = await self.memory.aget(op.namespace, op.key, refresh_ttl=self._refresh(op.refresh_ttl))
            return _item(rec) if rec is not None else None
        if isinstance(op, SearchOp):
            return await self._asearch(op)
        return await self.memory._offload(self._read, op)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops, reads, puts = self._split(ops)
        results: list[Result] = [None] * len(ops)
        for i, op in reads:
            with _memory_span([op]) as span:
                results[i] = self._read(op)
                span["outputs"] = _summary(results[i])
        if puts:
            with _memory_span(puts) as span:
                self.memory.apply(self._writes(puts, span["provenance"]))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops, reads, puts = self._split(ops)
        results: list[Result] = [None] * len(ops)
        for i, op in reads:
            with _memory_span([op]) as span:
                results[i] = await self._aread(op)
                span["outputs"] = _summary(results[i])
        if puts:
            with _memory_span(puts) as span:
                await self.memory.aapply(self._writes(puts, span["provenance"]))
        return results

    def _search_args(self, op: SearchOp) -> dict[str, Any]:
        return dict(query=op.query or None, namespace=op.namespace_prefix, filter=op.filter, limit=op.limit,
                    offset=op.offset, refresh_ttl=self._refresh(op.refresh_ttl))

    def _search(self, op: SearchOp, hits: list[SearchHit]) -> list[SearchItem]:
        items = [_search_item(h) for h in hits]
        if op.query and len(items) < op.limit:
            # as LangGraph's stores do: fill up with the items the query did not score
            seen = {(i.namespace, i.key) for i in items}
            more = self.memory.search(None, namespace=op.namespace_prefix, filter=op.filter,
                                      limit=op.offset + op.limit + len(seen))
            items += [SearchItem(h.record.namespace, h.record.key, h.record.value, h.record.created_at,
                                 h.record.updated_at) for h in more if (h.record.namespace, h.record.key) not in seen
                      ][: op.limit - len(items)]
        return items

    async def _asearch(self, op: SearchOp) -> list[SearchItem]:
        hits = await self.memory.asearch(**self._search_args(op))
        if op.query and len(hits) < op.limit:
            return await self.memory._offload(self._search, op, hits)
        return [_search_item(h) for h in hits]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        prefix = suffix = None
        for cond in op.match_conditions or ():
            if cond.match_type == "prefix":
                prefix = tuple(cond.path)
            else:
                suffix = tuple(cond.path)
        conditions = [NamespaceMatch(c.match_type, tuple(c.path)) for c in op.match_conditions or ()]
        if len(conditions) > 2 or sum(c.kind == "prefix" for c in conditions) > 1:
            # several conditions of one kind: list them all and keep those matching every one
            # (Sutram's own namespaces only when a prefix asks for them by name)
            system = any(c.kind == "prefix" and c.path[:1] == (SYSTEM_ROOT,) for c in conditions)
            found = self.memory.list_namespaces(prefix=(SYSTEM_ROOT,) if system else None, max_depth=None,
                                                limit=10**9)
            kept = sorted({ns[: op.max_depth] if op.max_depth else ns for ns in found
                           if all(c.matches(ns) for c in conditions)})
            return kept[op.offset: op.offset + op.limit]
        return self.memory.list_namespaces(prefix=prefix, suffix=suffix, max_depth=op.max_depth, limit=op.limit,
                                           offset=op.offset)
