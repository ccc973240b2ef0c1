"""The Weaviate memory backend: one multi-tenant collection, Sutram tenants as Weaviate tenants.

Search asks Weaviate for its ``near_vector`` and ``bm25`` candidates and scores them with
the same fusion as the SQL backends (:func:`sutram_core.memory.ranking.fuse`), so a query
ranks alike on every backend. Filters come from
:mod:`.translate`. Weaviate has no transactions: a batch of writes is applied in order,
and object ids are deterministic (tenant, namespace, key, version), so a batch that
failed half-way is completed, never duplicated, by running it again. A server that is
down or restarting is waited for briefly, then reported as
:class:`~sutram_core.errors.DatabaseUnavailableError` (:mod:`.outage`).

>>> backend = WeaviateMemoryBackend.from_url("http://localhost:8080")   # doctest: +SKIP
>>> store = MemoryStore(backend, tenant="acme")                         # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from sutram_core.backends.weaviate.outage import (
    CHANNEL_OPTIONS,
    classify,
    fail_fast,
    guarded,
    wait_until_reachable,
)
from sutram_core.backends.weaviate.translate import (
    OPEN,
    flat_properties,
    object_uuid,
    prefixes,
    tenant_name,
    to_filter,
)
from sutram_core.errors import (
    ConfigurationError,
    InvalidMemoryError,
    MissingDependencyError,
    StorageError,
)
from sutram_core.memory.ranking import fuse, recency_factor
from sutram_core.memory.records import (
    MemoryKind,
    MemoryRecord,
    NamespaceMatch,
    Provenance,
    SearchHit,
    decode_namespace,
    encode_namespace,
    from_micros,
    to_micros,
)
from sutram_core.memory.store import SearchRequest, Write

__all__ = ["WeaviateMemoryBackend"]

_BASE_PROPS: dict[str, str] = {
    "tenant_id": "text", "mid": "text", "namespace": "text", "ns_prefixes": "text[]", "depth": "int",
    "key": "text", "kind": "text", "text": "text", "value_json": "text", "metadata_json": "text",
    "provenance_json": "text", "version": "int", "supersedes": "text", "created_at": "int", "updated_at": "int",
    "valid_from": "int", "valid_to": "int", "ttl_seconds": "number", "expires_at": "int",
}
_RETURN = [p for p in _BASE_PROPS if p != "ns_prefixes"]
_CANDIDATES = 40  # per candidate list, at least (as the SQL backend)
# Weaviate answers no query past offset + limit = QUERY_MAXIMUM_RESULTS (10,000 unless the
# server sets it otherwise); found when a chat store listed a session with limit=10**9
MAX_RESULTS = int(os.environ.get("SUTRAM_WEAVIATE_MAX_RESULTS", "10000"))


def _weaviate() -> Any:
    try:
        import weaviate
    except ImportError as exc:
        raise MissingDependencyError("weaviate-client", "weaviate") from exc
    return weaviate


class WeaviateMemoryBackend:
    """Memories in a Weaviate collection (see the module docstring)."""

    def __init__(self, client: Any, *, collection: str = "SutramMemory", owns_client: bool = True,
                 where: str = "the configured URL") -> None:
        self.client = client
        self.name = collection
        self.where = where  # how errors name the server
        self._owns_client = owns_client
        self._lock = threading.Lock()
        self._props: set[str] | None = None
        self._tenants: set[str] = set()
        self._ensure_collection()

    @classmethod
    def from_url(cls, url: str, *, collection: str = "SutramMemory") -> WeaviateMemoryBackend:
        """Connect to ``http(s)://host:port`` (gRPC port from ``?grpc_port=``, default 50051;
        the collection from ``?collection=``, default ``collection``; an API key from
        ``SUTRAM_WEAVIATE_API_KEY``)."""
        weaviate = _weaviate()
        parts = urlsplit(url.replace("weaviate://", "http://", 1))
        if not parts.hostname:
            raise ConfigurationError(f"a Weaviate URL looks like http://localhost:8080, not {url!r}")
        query = dict(parse_qsl(parts.query))
        secure = parts.scheme == "https"
        key = os.environ.get("SUTRAM_WEAVIATE_API_KEY")
        where = f"{parts.scheme}://{parts.hostname}:{parts.port or (443 if secure else 8080)}"
        init = weaviate.classes.init
        try:
            client = weaviate.connect_to_custom(
                http_host=parts.hostname, http_port=parts.port or (443 if secure else 8080), http_secure=secure,
                grpc_host=query.get("grpc_host", parts.hostname), grpc_port=int(query.get("grpc_port", 50051)),
                grpc_secure=secure, auth_credentials=init.Auth.api_key(key) if key else None,
                additional_config=init.AdditionalConfig(grpc_config=init.GrpcConfig(channel_options=CHANNEL_OPTIONS)),
            )
        except Exception as exc:  # the client raises several unrelated classes
            kind = classify(exc)
            raise kind(f"cannot connect to Weaviate at {where}: {str(exc).splitlines()[0][:300]}. Start the server "
                       "or check the URL (http://host:port?grpc_port=N) and try again") from exc
        fail_fast(client, where)
        try:
            return cls(client, collection=query.get("collection", collection), where=where)
        except BaseException:
            client.close()
            raise

    # -- schema ---------------------------------------------------------------------------

    def _ensure_collection(self) -> None:
        wait_until_reachable(self.client, self.where)
        try:
            self._create_collection()
        except StorageError:
            raise
        except Exception as exc:
            raise classify(exc)(f"Weaviate at {self.where} failed while setting up collection {self.name}: "
                                f"{str(exc).splitlines()[0][:300]}") from exc

    def _create_collection(self) -> None:
        from weaviate.classes.config import Configure, DataType, Property, Tokenization

        types = {"text": DataType.TEXT, "text[]": DataType.TEXT_ARRAY, "int": DataType.INT,
                 "number": DataType.NUMBER}
        if not self.client.collections.exists(self.name):
            self.client.collections.create(
                self.name,
                multi_tenancy_config=Configure.multi_tenancy(enabled=True, auto_tenant_creation=True,
                                                             auto_tenant_activation=True),
                vector_config=Configure.Vectors.self_provided(),
                properties=[
                    Property(name=n, data_type=types[t], index_searchable=(n == "text"),
                             tokenization=Tokenization.WORD if n == "text" else (
                                 Tokenization.FIELD if t.startswith("text") else None),
                             skip_vectorization=True)
                    for n, t in _BASE_PROPS.items()
                ],
            )
        self.collection = self.client.collections.get(self.name)
        config = self.collection.config.get()
        self._props = {p.name for p in config.properties}

    def _ensure_props(self, props: dict[str, Any]) -> None:
        from weaviate.classes.config import DataType, Property, Tokenization

        assert self._props is not None
        missing = [name for name in props if name not in self._props]
        for name in missing:
            kind = name.rsplit("_", 1)[1]
            data_type = {"s": DataType.TEXT, "j": DataType.TEXT, "n": DataType.NUMBER, "b": DataType.BOOL,
                         "z": DataType.BOOL}[kind]
            self.collection.config.add_property(Property(
                name=name, data_type=data_type, index_searchable=False,
                tokenization=Tokenization.FIELD if kind in ("s", "j") else None, skip_vectorization=True,
            ))
            self._props.add(name)

    def _tenant(self, tenant: str) -> Any:
        """The collection as ``tenant`` sees it, the Weaviate tenant created on first use:
        auto-creation happens on insert only, and a read of a tenant that has written
        nothing yet failed with "tenant not found" (found against a live server)."""
        name = tenant_name(tenant)
        if name not in self._tenants:
            from weaviate.classes.tenants import Tenant

            with self._lock:
                if name not in self._tenants:
                    if self.collection.tenants.get_by_name(name) is None:
                        try:
                            self.collection.tenants.create([Tenant(name=name)])
                        except Exception:  # another process created it first
                            if self.collection.tenants.get_by_name(name) is None:
                                raise
                    self._tenants.add(name)
        return self.collection.with_tenant(name)

    @guarded
    def drop(self) -> None:
        """Delete the whole collection (every tenant's memories)."""
        self.client.collections.delete(self.name)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # -- objects --------------------------------------------------------------------------

    def _properties(self, tenant: str, rec: MemoryRecord) -> dict[str, Any]:
        props: dict[str, Any] = {
            "tenant_id": tenant, "mid": rec.id, "namespace": encode_namespace(rec.namespace),
            "ns_prefixes": prefixes(rec.namespace), "depth": len(rec.namespace), "key": rec.key,
            "kind": rec.kind.value, "text": rec.text,
            "value_json": orjson.dumps(rec.value, option=orjson.OPT_NON_STR_KEYS).decode(),
            "metadata_json": orjson.dumps(rec.metadata, option=orjson.OPT_NON_STR_KEYS).decode(),
            "provenance_json": orjson.dumps(rec.provenance.as_dict()).decode(), "version": rec.version,
            "supersedes": rec.supersedes or "", "created_at": to_micros(rec.created_at or 0),
            "updated_at": to_micros(rec.updated_at or 0), "valid_from": to_micros(rec.valid_from or 0),
            "valid_to": to_micros(rec.valid_to) if rec.valid_to else OPEN, "ttl_seconds": rec.ttl_seconds or 0.0,
            "expires_at": to_micros(rec.expires_at) if rec.expires_at else OPEN,
        }
        props.update(flat_properties(rec.value, rec.metadata))
        return props

    @staticmethod
    def _record(tenant: str, props: dict[str, Any]) -> MemoryRecord:
        valid_to = int(props["valid_to"])
        expires = int(props["expires_at"])
        return MemoryRecord(
            namespace=decode_namespace(props["namespace"]), key=props["key"], value=orjson.loads(props["value_json"]),
            text=props["text"] or "", kind=MemoryKind(props["kind"]), metadata=orjson.loads(props["metadata_json"]),
            provenance=Provenance.from_dict(orjson.loads(props["provenance_json"] or "{}")),
            ttl_seconds=props["ttl_seconds"] or None, id=props["mid"], tenant_id=tenant, version=int(props["version"]),
            created_at=from_micros(int(props["created_at"])), updated_at=from_micros(int(props["updated_at"])),
            valid_from=from_micros(int(props["valid_from"])),
            valid_to=None if valid_to == OPEN else from_micros(valid_to),
            expires_at=None if expires == OPEN else from_micros(expires), supersedes=props["supersedes"] or None,
        )

    def _current(self, tenant: str, namespace: tuple[str, ...], key: str, now: int) -> list[Any]:
        col = self._tenant(tenant)
        # expired or not: a write replaces or closes the current record either way
        f = to_filter(namespace_prefix=namespace, exact_namespace=True, key=key, now=0)
        return list(col.query.fetch_objects(filters=f, limit=10, return_properties=_RETURN).objects)

    # -- writes ---------------------------------------------------------------------------

    @guarded
    def apply(self, tenant: str, writes: Sequence[Write]) -> list[MemoryRecord | None]:
        import uuid

        col = self._tenant(tenant)
        bulk = self._put_new_in_bulk(tenant, col, writes)
        if bulk is not None:
            return bulk
        out: list[MemoryRecord | None] = []
        for w in writes:
            current = self._current(tenant, w.namespace, w.key, w.at)
            if w.op == "delete":
                from weaviate.classes.query import Filter

                col.data.delete_many(where=Filter.by_property("namespace").equal(encode_namespace(w.namespace))
                                     & Filter.by_property("key").equal(w.key))
                out.append(None)
                continue
            if w.op == "close":
                for obj in current:
                    col.data.update(uuid=obj.uuid, properties={"valid_to": w.at})
                out.append(None)
                continue
            if w.op == "meta":
                for obj in current:
                    merged = {**self._record(tenant, obj.properties).metadata, **(w.metadata or {})}
                    props = {"metadata_json": orjson.dumps(merged).decode(), "updated_at": w.at,
                             **flat_properties({}, merged)}
                    self._ensure_props(props)
                    col.data.update(uuid=obj.uuid, properties=props)
                out.append(None)
                continue
            rec = w.record
            assert rec is not None
            rec.tenant_id = tenant
            rec.updated_at = from_micros(w.at)
            rec.expires_at = from_micros(w.at + int(rec.ttl_seconds * 1e6)) if rec.ttl_seconds else None
            existing = self._record(tenant, current[0].properties) if current else None
            if existing is not None and w.op == "put":
                rec.id, rec.version = existing.id, existing.version
                rec.created_at, rec.valid_from = existing.created_at, existing.valid_from
                target = current[0].uuid
            else:
                if existing is not None:
                    col.data.update(uuid=current[0].uuid, properties={"valid_to": w.at})
                    rec.version = existing.version + 1
                    rec.supersedes = rec.supersedes or existing.id
                rec.id = rec.id or uuid.uuid4().hex
                rec.created_at = from_micros(w.at)
                rec.valid_from = rec.valid_from or rec.created_at
                target = object_uuid(tenant, w.namespace, w.key, rec.version)
            props = self._properties(tenant, rec)
            self._ensure_props(props)
            vector = [float(x) for x in rec.embedding] if rec.embedding is not None else None
            if existing is not None and w.op == "put":
                col.data.replace(uuid=target, properties=props, vector=vector)
            else:
                col.data.insert(properties=props, uuid=target, vector=vector)
            out.append(rec)
        return out

    def _put_new_in_bulk(self, tenant: str, col: Any, writes: Sequence[Write]) -> list[MemoryRecord | None] | None:
        """Puts of keys that have no current record yet (a bulk load), in a few round trips:
        one query per 100 keys for their current records, one gRPC batch for the objects.
        None, having written nothing, when that is not what ``writes`` are: another op, a
        key twice, or a key that has a current record (each write then goes on its own, as
        :meth:`apply` does): 2 round trips a record made a 100,000-memory load take 18 min."""
        import uuid

        from weaviate.classes.data import DataObject
        from weaviate.classes.query import Filter

        if len(writes) < 2 or any(w.op != "put" or w.record is None for w in writes):
            return None
        if len({(w.namespace, w.key) for w in writes}) != len(writes):
            return None
        for at in range(0, len(writes), 100):
            keys = sorted({w.key for w in writes[at: at + 100]})
            found = col.query.fetch_objects(
                filters=to_filter(now=0) & Filter.by_property("key").contains_any(keys), limit=1,
                return_properties=["namespace", "key"])
            if found.objects:  # some key has a record: let each write find its own
                return None
        objects = []
        out: list[MemoryRecord | None] = []
        for w in writes:
            rec = w.record
            assert rec is not None
            rec.tenant_id = tenant
            rec.updated_at = rec.created_at = from_micros(w.at)
            rec.expires_at = from_micros(w.at + int(rec.ttl_seconds * 1e6)) if rec.ttl_seconds else None
            rec.id = rec.id or uuid.uuid4().hex
            rec.valid_from = rec.valid_from or rec.created_at
            props = self._properties(tenant, rec)
            self._ensure_props(props)
            vector = [float(x) for x in rec.embedding] if rec.embedding is not None else None
            objects.append(DataObject(properties=props, uuid=object_uuid(tenant, w.namespace, w.key, rec.version),
                                      vector=vector))
            out.append(rec)
        result = col.data.insert_many(objects)
        if result.errors:
            first = next(iter(result.errors.values()))
            raise StorageError(f"Weaviate at {self.where} refused {len(result.errors)} of {len(objects)} memories "
                               f"({getattr(first, 'message', first)}); the rest were written: write the batch "
                               "again (ids are deterministic, nothing doubles)")
        return out

    @guarded
    def refresh_ttl(self, tenant: str, ids: Sequence[str], now: int) -> None:
        from weaviate.classes.query import Filter

        col = self._tenant(tenant)
        found = col.query.fetch_objects(filters=Filter.by_property("mid").contains_any(list(ids)),
                                        limit=len(ids) or 1, return_properties=["ttl_seconds"])
        for obj in found.objects:
            ttl = obj.properties.get("ttl_seconds") or 0
            if ttl:
                col.data.update(uuid=obj.uuid, properties={"expires_at": now + int(ttl * 1e6)})

    @guarded
    def sweep(self, now: int) -> int:
        from weaviate.classes.query import Filter

        total = 0
        for name in self.collection.tenants.get():
            result = self.collection.with_tenant(name).data.delete_many(
                where=Filter.by_property("expires_at").less_or_equal(now))
            total += int(getattr(result, "successful", 0) or 0)
        return total

    # -- reads ----------------------------------------------------------------------------

    @guarded
    def get(self, tenant: str, refs: Sequence[tuple[tuple[str, ...], str]], as_of: int | None,
            now: int) -> list[MemoryRecord | None]:
        col = self._tenant(tenant)
        out: list[MemoryRecord | None] = []
        for ns, key in refs:
            f = to_filter(namespace_prefix=ns, exact_namespace=True, key=key, as_of=as_of, now=now)
            objs = col.query.fetch_objects(filters=f, limit=1, return_properties=_RETURN).objects
            out.append(self._record(tenant, objs[0].properties) if objs else None)
        return out

    @guarded
    def history(self, tenant: str, namespace: tuple[str, ...], key: str) -> list[MemoryRecord]:
        from weaviate.classes.query import Filter

        col = self._tenant(tenant)
        f = (Filter.by_property("namespace").equal(encode_namespace(namespace))
             & Filter.by_property("key").equal(key))
        objs = col.query.fetch_objects(filters=f, limit=10_000, return_properties=_RETURN).objects
        return sorted((self._record(tenant, o.properties) for o in objs), key=lambda r: r.version)

    @guarded
    def tenants(self) -> list[str]:
        return sorted(self.collection.tenants.get())

    @guarded
    def list_namespaces(self, tenant: str, conditions: Sequence[NamespaceMatch], max_depth: int | None,
                        limit: int, offset: int, now: int) -> list[tuple[str, ...]]:
        col = self._tenant(tenant)
        found: set[tuple[str, ...]] = set()
        for obj in col.iterator(return_properties=["namespace", "valid_to", "expires_at"]):
            props = obj.properties
            if int(props["valid_to"]) == OPEN and int(props["expires_at"]) > now:
                found.add(decode_namespace(props["namespace"]))
        kept = {ns[:max_depth] if max_depth else ns for ns in found if all(c.matches(ns) for c in conditions)}
        return sorted(kept)[offset: offset + limit]

    def _known(self, name: str) -> bool:
        """Whether the collection's schema has property ``name`` (asking the server again
        when this process has not seen it: another process may have added it)."""
        assert self._props is not None
        if name not in self._props:
            with self._lock:
                self._props |= {p.name for p in self.collection.config.get().properties}
        return name in self._props

    def _filter(self, request: SearchRequest) -> Any:
        return to_filter(known=self._known, namespace_prefix=request.namespace_prefix,
                         exact_namespace=request.exact_namespace, exclude_system=request.exclude_system,
                         conditions=request.conditions, kinds=request.kinds, created_after=request.created_after,
                         created_before=request.created_before, as_of=request.as_of, now=request.now)

    @guarded
    def count(self, tenant: str, request: SearchRequest) -> int:
        result = self._tenant(tenant).aggregate.over_all(filters=self._filter(request), total_count=True)
        return int(result.total_count or 0)

    @staticmethod
    def _listing_limit(col: Any, f: Any, request: SearchRequest) -> int:
        """The limit of a listing that Weaviate can answer: ``request.limit``, or, past
        :data:`MAX_RESULTS`, what is left of the matches (one count); a listing that needs
        matches beyond it is refused rather than cut short."""
        if request.offset + request.limit <= MAX_RESULTS:
            return request.limit
        total = int(col.aggregate.over_all(filters=f, total_count=True).total_count or 0)
        end = min(request.offset + request.limit, total)
        if end > MAX_RESULTS:
            raise InvalidMemoryError(
                f"Weaviate lists at most the first {MAX_RESULTS:,} matches of a query (its QUERY_MAXIMUM_RESULTS), "
                f"and {total:,} match this one: narrow it with a namespace, filter or time range, or raise "
                "QUERY_MAXIMUM_RESULTS on the server and SUTRAM_WEAVIATE_MAX_RESULTS here")
        return end - request.offset

    @guarded
    def search(self, tenant: str, request: SearchRequest) -> list[SearchHit]:
        from weaviate.classes.query import MetadataQuery

        col = self._tenant(tenant)
        f = self._filter(request)
        vector = [float(x) for x in request.vector] if request.vector is not None else None
        if not request.query and vector is None:
            from weaviate.classes.query import Sort

            sort = (Sort.by_property("namespace").by_property("key") if request.order == "key"
                    else Sort.by_property("updated_at", ascending=False))
            limit = self._listing_limit(col, f, request)
            if limit <= 0:
                return []
            result = col.query.fetch_objects(sort=sort, filters=f, limit=limit, offset=request.offset,
                                             return_properties=_RETURN)
            return [SearchHit(self._record(tenant, obj.properties)) for obj in result.objects]
        # the two candidate lists, scored by the same fusion as the SQL backends
        need = request.offset + request.limit
        if request.offset >= MAX_RESULTS:
            return []  # nothing ranks that deep in Weaviate
        depth = min(need if request.mode == "vector" else max(_CANDIDATES, 2 * need), MAX_RESULTS)
        props: dict[str, dict[str, Any]] = {}
        vector_hits: list[tuple[str, float]] = []
        keyword_hits: list[tuple[str, float]] = []
        if vector is not None and request.mode in ("hybrid", "vector"):
            for obj in col.query.near_vector(near_vector=vector, filters=f, limit=depth, return_properties=_RETURN,
                                             return_metadata=MetadataQuery(distance=True)).objects:
                props[str(obj.uuid)] = obj.properties
                vector_hits.append((str(obj.uuid), 1.0 - float(obj.metadata.distance or 0.0)))
        if request.query and request.mode in ("hybrid", "keyword"):
            for obj in col.query.bm25(query=request.query, query_properties=["text"], filters=f, limit=depth,
                                      return_properties=_RETURN, return_metadata=MetadataQuery(score=True)).objects:
                props[str(obj.uuid)] = obj.properties
                keyword_hits.append((str(obj.uuid), float(obj.metadata.score or 0.0)))
        if request.mode == "vector" or not keyword_hits:
            fused = vector_hits
        else:
            fused = fuse(request.query or "", vector_hits, keyword_hits,
                         {i: str(p.get("text") or "") for i, p in props.items()}, request.weights,
                         "keyword" if request.mode == "keyword" or not vector_hits else "hybrid")
        vscore, kscore = dict(vector_hits), dict(keyword_hits)
        hits = []
        for ident, score in fused:
            record = self._record(tenant, props[ident])
            if request.recency_half_life:
                age = (request.now - to_micros(record.updated_at or request.now / 1e6)) / 1e6
                score *= recency_factor(age, request.recency_half_life)
            hits.append(SearchHit(record, score, vscore.get(ident), kscore.get(ident)))
        hits.sort(key=lambda h: -(h.score or 0.0))  # stable: equal scores keep the fused order
        return hits[request.offset: request.offset + request.limit]
