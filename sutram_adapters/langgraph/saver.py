"""``SutramSaver``: a LangGraph checkpointer on Sutram's SQL store.

Drop-in for ``SqliteSaver`` / ``PostgresSaver``::

    from sutram_adapters.langgraph import SutramSaver

    with SutramSaver.from_url("sqlite:///app.db") as saver:      # or "postgresql://..."
        graph = builder.compile(checkpointer=saver)
        graph.invoke(inputs, {"configurable": {"thread_id": "t1"}})

The same object serves sync and async graphs. Each channel value is stored once per
version, growing lists as appended tails; tenants are isolated in every method.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import zlib
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.base import SerializerProtocol

from sutram_adapters.langgraph._decode import DecodeFailure, StrictDecoder, default_serde
from sutram_adapters.langgraph._list_items import ListItemSerializer
from sutram_core.checkpoints.records import (
    EMPTY,
    ChannelValue,
    CheckpointRecord,
    DeltaHistory,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)
from sutram_core.config import url_of_conn_string
from sutram_core.errors import CheckpointDecodeError, ConfigurationError, InvalidCheckpointError
from sutram_core.tenancy import resolve_tenant, validate_tenant

if TYPE_CHECKING:  # SQLAlchemy is imported when the first saver is made, not with the class
    from sutram_core.backends.sql.checkpoints import SqlCheckpointStore
    from sutram_core.backends.sql.database import Database

__all__ = ["SutramSaver"]

_log = logging.getLogger("sutram.checkpoints")


def _version_key(version: str | int | float) -> str:
    # Text keys that keep str, int and float versions apart ("1" is not 1).
    if isinstance(version, str):
        return "s" + version
    if isinstance(version, bool) or not isinstance(version, (int, float)):
        raise InvalidCheckpointError(f"channel version {version!r} must be a str, int or float")
    return ("i" + str(version)) if isinstance(version, int) else ("f" + repr(version))


def _version_from_key(key: str) -> str | int | float:
    tag, text = key[0], key[1:]
    if tag == "s":
        return text
    return int(text) if tag == "i" else float(text)


_ZLIB = "zlib+"
# the type of a checkpoint row's data that carries values of its own (see _pack_skeleton):
# a Sutram that would not read them refuses the row instead of reading a state without them
_INLINE = "inline+"
# A checkpoint's own data is compressed from this size. Below it, compressing cost more time
# than the bytes it saved were worth: 7 to 9 us a put for the 1.2 to 2.2 KB of a 5- to
# 10-node graph's checkpoint (its versions_seen), and about 5x that inside a running graph,
# for 3% of a 10-node graph's step; leaving those uncompressed made the checkpoint benchmark's
# database 20% larger (8.8 -> 10.6 MiB). PostgreSQL compresses rows over about 2 KB itself.
_COMPRESS_FROM = 4096


_INLINE_STR = 256  # characters: a longer string is stored once per version, not in every checkpoint


def _inlined(value: Any) -> bool:
    """Whether a channel value travels in the checkpoint's own row: None, a bool, a float,
    an int msgpack can hold, or a short str (exact types: a subclass such as an Enum keeps
    its own serialization, in a row of its own)."""
    kind = type(value)
    if kind is str:
        return len(value) <= _INLINE_STR
    if kind is int:
        return -(2**63) <= value < 2**64
    return value is None or kind is bool or kind is float


def _split_inline(
    checkpoint: Checkpoint, metadata: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The values kept in the checkpoint's row, the versions of the channels they and the
    empty channels (a version, no value) have, and the version keys (see
    :func:`_version_key`) of the other channels: a checkpoint of scalars is then one row, as
    in LangGraph's PostgresSaver, where each value took a row and a lookup of its own. Values
    that are not scalars (see :func:`_inlined`) are stored as rows, once per version; so are
    LangGraph delta channels, whose history the store walks by version. Every version is
    checked (InvalidCheckpointError). One pass: inside a running graph each pass over the
    checkpoint costs several times what it costs alone."""
    values = checkpoint["channel_values"]
    delta = metadata.get("counters_since_delta_snapshot") or ()
    inline: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    stored: dict[str, str] = {}
    for channel, version in checkpoint["channel_versions"].items():
        if channel in delta:
            stored[channel] = _version_key(version)
            continue
        if channel not in values:
            versions[channel] = version
        elif _inlined(value := values[channel]):
            inline[channel] = value
            versions[channel] = version
        else:
            stored[channel] = _version_key(version)
            continue
        kind = type(version)
        if kind is not str:  # a str is a valid version; anything else is checked
            key = _version_key(version)
            if kind is not int and kind is not float:
                # a subclass (an Enum): kept as its plain value, as a stored channel's reads back
                versions[channel] = _version_from_key(key)
    return inline, versions, stored


def _pack_skeleton(
    serde: SerializerProtocol, checkpoint: Checkpoint, inline: dict[str, Any], versions: dict[str, Any]
) -> tuple[str, bytes]:
    # The checkpoint without the values and versions stored apart, compressed unless small:
    # versions_seen repeats long version strings, and on PostgreSQL a row this small is below
    # the size at which the server would compress it. The scalar values and their versions
    # stay in it.
    skeleton: dict[str, Any] = dict(checkpoint)
    if versions:
        skeleton["channel_values"] = inline
        skeleton["channel_versions"] = versions
    else:
        skeleton.pop("channel_values", None)
        skeleton.pop("channel_versions", None)
    type_, data = serde.dumps_typed(skeleton)
    if versions:
        type_ = _INLINE + type_
    if len(data) < _COMPRESS_FROM:
        return type_, data
    return _ZLIB + type_, zlib.compress(data, 1)


def _not_a_checkpoint(checkpoint: Any, carries: bool) -> str:
    """What makes a decoded checkpoint row's data unusable as a checkpoint ("" if nothing):
    LangGraph would fail later, and further from the row, on each of these."""
    if not isinstance(checkpoint, dict):
        return f"a {type(checkpoint).__name__}, not a map"
    if not isinstance(checkpoint.get("id"), str):
        return "no checkpoint id"
    if not isinstance(checkpoint.get("versions_seen", {}), dict):
        return "versions_seen is not a map"
    maps = ("channel_values", "channel_versions") if carries else ()
    for name in maps:
        if not isinstance(checkpoint.get(name), dict) or not all(isinstance(k, str) for k in checkpoint[name]):
            return f"{name} is not a map of channel names"
    if carries:
        for version in checkpoint["channel_versions"].values():
            if isinstance(version, bool) or not isinstance(version, (str, int, float)):
                return f"a channel version is a {type(version).__name__}"
        if not checkpoint["channel_values"].keys() <= checkpoint["channel_versions"].keys():
            return "a value without a version"
    return ""


def _encode(channel: str, dumps: Callable[..., tuple[str, bytes]], *args: Any) -> tuple[str, bytes]:
    """``dumps(*args)``, turning a value the serializer refuses into InvalidCheckpointError
    that names the channel (before anything is written)."""
    try:
        return dumps(*args)
    except RecursionError as exc:
        raise InvalidCheckpointError(
            f"channel {channel!r} cannot be stored: it is nested too deeply or refers to itself"
        ) from exc
    except (TypeError, ValueError, OverflowError) as exc:
        reason = str(exc)
        if "Recursion limit" in reason:
            reason = "it is nested too deeply (over 254 levels) or refers to itself (a cycle)"
        elif "64-bit" in reason:
            reason = "it holds an integer beyond 64 bits; store it as a string or Decimal"
        elif "not msgpack serializable" in reason:
            reason = f"{reason}; store plain data (dict, list, str, numbers, dataclasses, pydantic models)"
        raise InvalidCheckpointError(f"channel {channel!r} cannot be stored: {reason}") from exc


# json.dumps(..., ensure_ascii=False, separators=(",", ":")) with its encoder made once
_metadata_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _dump_metadata(metadata: dict[str, Any]) -> str:
    try:
        return _metadata_json(metadata)
    except (TypeError, ValueError) as exc:
        bad = [k for k, v in metadata.items() if not _json_ok(v)]
        raise InvalidCheckpointError(
            f"checkpoint metadata must be JSON (keys {bad} are not): {exc}. "
            "Put such values in the graph state, not in config metadata."
        ) from exc


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class SutramSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer that stores checkpoints in Sutram's database.

    Args:
        url: database URL (``sqlite:///path.db`` or ``postgresql://...``); default
            ``SUTRAM_URL`` or ``./.sutram/sutram.db``.
        tenant: bind the saver to one tenant. Without it, each call uses
            ``config["configurable"]["tenant_id"]`` or the tenant ``"default"``.
        serde: LangGraph serializer. The default is a ``JsonPlusSerializer`` in LangGraph's
            strict mode: a stored value rebuilds only LangGraph's safe types (messages,
            documents, datetimes, ...) and ``allowed_types``; any other type raises
            :class:`~sutram_core.errors.CheckpointDecodeError` naming it. Nothing is
            pickled, no stored row can name a function or a method to call.
        allowed_types: classes (or ``(module, name)`` pairs) of your own that state may
            hold, e.g. a dataclass or pydantic model kept in a channel. Graphs run by
            ``durable()`` allow their schema's types by themselves, as LangGraph does under
            ``LANGGRAPH_STRICT_MSGPACK``.
        database: share an open :class:`~sutram_core.backends.sql.database.Database`.
        reuse_list_items: reuse the bytes of list items that were already checkpointed
            (the same objects) instead of serializing them again; see
            ``sutram_adapters.langgraph._list_items``.

    The schema is created on first use; :meth:`setup` does it eagerly (idempotent).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        tenant: str | None = None,
        serde: SerializerProtocol | None = None,
        database: Database | None = None,
        reuse_list_items: bool = True,
        allowed_types: Collection[tuple[str, ...] | type] = (),
        _store: SqlCheckpointStore | None = None,
    ) -> None:
        if serde is None:
            serde = default_serde(allowed_types)
        elif allowed_types:
            raise ConfigurationError("pass allowed_types or serde, not both (a serde carries its own allowlist)")
        super().__init__(serde=serde)
        self.tenant = validate_tenant(tenant) if tenant is not None else None
        if _store is not None:
            self._store = _store
            self._owns_db = False
        else:
            from sutram_core.backends.sql.checkpoints import SqlCheckpointStore
            from sutram_core.backends.sql.database import Database

            # from now on the annotations naming them resolve (typing.get_type_hints)
            globals().setdefault("Database", Database)
            globals().setdefault("SqlCheckpointStore", SqlCheckpointStore)
            db = database if database is not None else Database(url)
            self._store = SqlCheckpointStore(db)
            self._owns_db = database is None
        self._decoder = StrictDecoder(self.serde)
        self._values = ListItemSerializer(self.serde, enabled=reuse_list_items)
        #: checkpoints that list() skipped because they could not be decoded (each logged)
        self.undecodable = 0

    # -- construction and lifecycle -----------------------------------------------

    @classmethod
    def from_url(cls, url: str | None = None, *, tenant: str | None = None, **kwargs: Any) -> SutramSaver:
        """A saver for ``url``, usable as ``with`` or ``async with`` context manager."""
        return cls(url, tenant=tenant, **kwargs)

    @classmethod
    def from_conn_string(cls, conn_string: str, *, tenant: str | None = None, **kwargs: Any) -> SutramSaver:
        """LangGraph's name for :meth:`from_url`: ``with SutramSaver.from_conn_string("app.db") as saver``.
        ``conn_string`` is a Sutram URL or, as for ``SqliteSaver``, a SQLite file's path."""
        return cls(url_of_conn_string(conn_string), tenant=tenant, **kwargs)

    def for_tenant(self, tenant: str) -> SutramSaver:
        """A saver bound to ``tenant`` sharing this one's database and serializer."""
        return SutramSaver(tenant=tenant, serde=self.serde, reuse_list_items=self._values._encode is not None,
                           _store=self._store)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> SutramSaver:
        """A shallow clone whose serializer also allows ``extra_allowlist`` (LangGraph
        calls this when it compiles a graph under a strict msgpack allowlist)."""
        clone = super().with_allowlist(extra_allowlist)
        if clone is not self:
            assert isinstance(clone, SutramSaver)
            clone._decoder = StrictDecoder(clone.serde)
            clone._values = ListItemSerializer(clone.serde, enabled=self._values._encode is not None)
        return clone

    @property
    def database(self) -> Database:
        """The database this saver writes to."""
        return self._store.db

    def setup(self) -> None:
        """Create or upgrade the schema: the checkpoint tables (a store of memories or of
        traces on the same database makes its own on first use). Idempotent; also done on
        first use."""
        self._store.setup()

    async def asetup(self) -> None:
        """Async twin of :meth:`setup`."""
        await self._store.db.offload(self._store.setup)

    def close(self) -> None:
        """Release the database connections if this saver opened them."""
        if self._owns_db:
            self._store.db.close()

    def __enter__(self) -> SutramSaver:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SutramSaver:
        await self.asetup()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- config handling -----------------------------------------------------------

    def _scope(self, config: RunnableConfig) -> tuple[str, str, str]:
        conf = config.get("configurable") or {}
        thread_id = conf.get("thread_id")
        if thread_id is None or thread_id == "":
            raise InvalidCheckpointError(
                'config["configurable"]["thread_id"] is required, e.g. '
                '{"configurable": {"thread_id": "t1"}}'
            )
        return resolve_tenant(self.tenant, conf.get("tenant_id")), str(thread_id), conf.get("checkpoint_ns", "") or ""

    def _tenant_only(self) -> str:
        return resolve_tenant(self.tenant, None)

    # -- record building (no I/O) --------------------------------------------------

    def _record(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, new_versions: ChannelVersions
    ) -> CheckpointRecord:
        tenant, thread_id, ns = self._scope(config)
        try:
            values: dict[str, Any] = checkpoint["channel_values"]
            _present = checkpoint["channel_versions"], checkpoint["id"]  # or refused here
        except (KeyError, TypeError) as exc:
            raise InvalidCheckpointError(
                f"a checkpoint is a map with 'id', 'channel_values' and 'channel_versions' (missing {exc}); "
                "make one with langgraph.checkpoint.base.empty_checkpoint() or take LangGraph's"
            ) from exc
        md = get_checkpoint_metadata(config, metadata)
        md.pop("writes", None)  # type: ignore[misc]
        inline, inline_versions, stored_versions = _split_inline(checkpoint, md)
        type_, data = _encode("<checkpoint>", _pack_skeleton, self.serde, checkpoint, inline, inline_versions)
        new_values = []
        for channel, version in new_versions.items():
            if channel in inline_versions:
                continue
            if channel in values:
                vt, vd = _encode(channel, self._values.dumps, (tenant, thread_id, ns, channel), values[channel])
                new_values.append(ChannelValue(channel, _version_key(version), vt, vd))
            else:
                new_values.append(ChannelValue(channel, _version_key(version), EMPTY, b""))
        run_id = md.get("run_id")
        return CheckpointRecord(
            tenant=tenant,
            thread_id=thread_id,
            checkpoint_ns=ns,
            checkpoint_id=checkpoint["id"],
            parent_id=get_checkpoint_id(config),
            run_id=str(run_id) if run_id is not None else None,
            type=type_,
            data=data,
            metadata_json=_dump_metadata(md),  # type: ignore[arg-type]
            channel_versions=stored_versions,
            new_values=new_values,
        )

    def _write_args(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> tuple[str, str, str, str, list[WriteRecord]]:
        """The store arguments of put_writes: tenant, thread, namespace, checkpoint, records."""
        tenant, thread_id, ns = self._scope(config)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is None:
            raise InvalidCheckpointError('put_writes needs config["configurable"]["checkpoint_id"]')
        records = []
        for idx, (channel, value) in enumerate(writes):
            t, d = _encode(channel, self.serde.dumps_typed, value)
            records.append(WriteRecord(task_id, WRITES_IDX_MAP.get(channel, idx), channel, t, d, task_path))
        return tenant, thread_id, ns, checkpoint_id, records

    @staticmethod
    def _saved_config(config: RunnableConfig, thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
        conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
        tenant = (config.get("configurable") or {}).get("tenant_id")
        if tenant is not None:
            conf["tenant_id"] = tenant
        return {"configurable": conf}

    def _decode(self, where: tuple[str, str, str | None], channel: str, type_: str, data: bytes) -> Any:
        """Deserialize one stored value; ``where`` is (thread, namespace, checkpoint id)."""
        try:
            return self._decoder.loads(type_, data)
        except DecodeFailure as exc:
            raise CheckpointDecodeError(
                exc.reason,
                thread_id=where[0],
                checkpoint_ns=where[1],
                checkpoint_id=where[2],
                channel=channel,
                type_name=exc.type_name,
            ) from exc

    def _skeleton(self, where: tuple[str, str, str | None], stored_type: str, data: bytes) -> tuple[dict[str, Any], bool]:
        """A checkpoint row's own data, decoded, and whether it carries values (see
        :func:`_pack_skeleton`); CheckpointDecodeError if it is not a checkpoint."""
        type_ = stored_type
        if type_.startswith(_ZLIB):
            type_ = type_[len(_ZLIB):]
            try:
                data = zlib.decompress(data)
            except zlib.error as exc:
                raise CheckpointDecodeError(
                    f"the compressed checkpoint row is corrupt ({exc})", thread_id=where[0],
                    checkpoint_ns=where[1], checkpoint_id=where[2], channel="<checkpoint>", type_name=stored_type,
                ) from exc
        carries = type_.startswith(_INLINE)
        if carries:
            type_ = type_[len(_INLINE):]
        checkpoint = self._decode(where, "<checkpoint>", type_, data)
        # rows written between the change that kept values in them and their type: they carry
        # values when they hold channel_values (no row held any before)
        carries = carries or (isinstance(checkpoint, dict) and "channel_values" in checkpoint)
        problem = _not_a_checkpoint(checkpoint, carries)
        if problem:
            raise CheckpointDecodeError(
                f"the checkpoint row does not hold a checkpoint: {problem}", thread_id=where[0],
                checkpoint_ns=where[1], checkpoint_id=where[2], channel="<checkpoint>", type_name=stored_type,
            )
        return checkpoint, carries

    def _row_values(self, where: tuple[str, str], stored_type: str, data: bytes) -> dict[str, tuple[str, bytes]]:
        """The values a checkpoint row carries itself, serialized (for the store's walk of a
        delta channel's history: such a value is a seed too)."""
        checkpoint, carries = self._skeleton((*where, None), stored_type, data)
        if not carries:
            return {}
        return {ch: self.serde.dumps_typed(v) for ch, v in checkpoint["channel_values"].items()}

    def _tuple(self, config: RunnableConfig | None, stored: StoredCheckpoint) -> CheckpointTuple:
        base = config or {}
        where = (stored.thread_id, stored.checkpoint_ns, stored.checkpoint_id)
        checkpoint, carries = self._skeleton(where, stored.type, stored.data)
        stored_versions = {ch: _version_from_key(k) for ch, k in stored.channel_versions.items()}
        stored_values = {ch: self._decode(where, ch, t, d) for ch, (t, d) in stored.channel_values().items()}
        if carries:  # the scalar values and empty channels kept in the row (_split_inline), then the rows
            checkpoint["channel_versions"] = {**checkpoint["channel_versions"], **stored_versions}
            checkpoint["channel_values"] = {**checkpoint["channel_values"], **stored_values}
        else:
            checkpoint.setdefault("channel_versions", stored_versions)
            checkpoint["channel_values"] = stored_values
        writes = [
            (w.task_id, w.channel, self._decode(where, f"<write {w.channel}>", w.type, w.data))
            for w in stored.writes
        ]
        parent = (
            self._saved_config(base, stored.thread_id, stored.checkpoint_ns, stored.parent_id)
            if stored.parent_id
            else None
        )
        return CheckpointTuple(
            config=self._saved_config(base, stored.thread_id, stored.checkpoint_ns, stored.checkpoint_id),
            checkpoint=checkpoint,
            metadata=json.loads(stored.metadata_json),
            parent_config=parent,
            pending_writes=writes,
        )

    def _listed(self, config: RunnableConfig | None, stored: StoredCheckpoint) -> CheckpointTuple | None:
        """One listed checkpoint, or None (logged, counted in ``undecodable``) when it cannot
        be decoded: one corrupt row must not hide a tenant's whole history from ``list``.
        ``get_tuple`` of that checkpoint still raises :class:`CheckpointDecodeError`."""
        try:
            return self._tuple(config, stored)
        except CheckpointDecodeError as exc:
            self.undecodable += 1
            _log.warning("list() skipped a checkpoint that cannot be decoded: %s", exc)
            return None

    def _list_query(
        self, config: RunnableConfig | None, filter: dict[str, Any] | None, before: RunnableConfig | None, limit: int | None
    ) -> ListQuery:
        conf = (config or {}).get("configurable") or {}
        tenant = resolve_tenant(self.tenant, conf.get("tenant_id"))
        thread_id = conf.get("thread_id")
        return ListQuery(
            tenant=tenant,
            thread_id=str(thread_id) if thread_id is not None else None,
            checkpoint_ns=conf.get("checkpoint_ns"),
            checkpoint_id=conf.get("checkpoint_id"),
            before=get_checkpoint_id(before) if before else None,
            metadata_filter=filter or None,
            limit=limit,
        )

    # -- the BaseCheckpointSaver surface (sync) ------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config`` (its ``checkpoint_id``, or the latest), or None."""
        tenant, thread_id, ns = self._scope(config)
        stored = self._store.get(tenant, thread_id, ns, get_checkpoint_id(config))
        return None if stored is None else self._tuple(config, stored)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints matching ``config``, ``filter`` and ``before``, newest first, at most ``limit``."""
        for stored in self._store.list_checkpoints(self._list_query(config, filter, before, limit)):
            item = self._listed(config, stored)
            if item is not None:
                yield item

    def put(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, new_versions: ChannelVersions
    ) -> RunnableConfig:
        """Store a checkpoint; return the config that names it."""
        record = self._record(config, checkpoint, metadata, new_versions)
        self._store.put(record)
        return self._saved_config(config, record.thread_id, record.checkpoint_ns, record.checkpoint_id)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Store a task's pending writes for the checkpoint in ``config``."""
        self._store.put_writes(*self._write_args(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread of this saver's tenant; late writes to it are ignored."""
        self._store.delete_thread(self._tenant_only(), str(thread_id), str(uuid6(clock_seq=-1)))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints and writes of the given runs (this saver's tenant)."""
        self._store.delete_for_runs(self._tenant_only(), [str(r) for r in run_ids])

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints and writes to a new thread id."""
        self._store.copy_thread(self._tenant_only(), str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the latest checkpoint per namespace (``keep_latest``) or delete (``delete``)."""
        self._store.prune(self._tenant_only(), [str(t) for t in thread_ids], strategy, str(uuid6(clock_seq=-1)))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Writes and nearest stored value of ``channels`` along the ancestors of the
        checkpoint in ``config`` (LangGraph's ``DeltaChannel``), in a few queries."""
        if not channels:
            return {}
        tenant, thread_id, ns = self._scope(config)
        history = self._store.delta_history(tenant, thread_id, ns, get_checkpoint_id(config), channels,
                                            functools.partial(self._row_values, (thread_id, ns)))
        return self._delta_result(thread_id, ns, history, channels)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Async twin of :meth:`get_delta_channel_history`."""
        if not channels:
            return {}
        tenant, thread_id, ns = self._scope(config)
        history = await self._store.adelta_history(tenant, thread_id, ns, get_checkpoint_id(config), channels,
                                                   functools.partial(self._row_values, (thread_id, ns)))
        return self._delta_result(thread_id, ns, history, channels)

    def _delta_result(
        self, thread_id: str, ns: str, history: DeltaHistory | None, channels: Sequence[str]
    ) -> dict[str, DeltaChannelHistory]:
        where = (thread_id, ns, None)
        result: dict[str, DeltaChannelHistory] = {}
        for ch in channels:
            entry: DeltaChannelHistory = {"writes": []}
            if history is not None:
                entry["writes"] = [
                    (w.task_id, w.channel, self._decode(where, f"<write {w.channel}>", w.type, w.data))
                    for w in history.writes.get(ch, [])
                ]
                if ch in history.seeds:
                    entry["seed"] = self._decode(where, ch, *history.seeds[ch])
            result[ch] = entry
        return result

    def get_next_version(self, current: str | None, channel: None) -> str:
        # Same scheme as InMemorySaver/PostgresSaver: a counter plus a random fraction,
        # so versions written on two branches of a forked thread never collide.
        """The next channel version: a zero-padded counter and a random fraction."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # -- async twins ---------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async twin of :meth:`get_tuple`."""
        tenant, thread_id, ns = self._scope(config)
        stored = await self._store.aget(tenant, thread_id, ns, get_checkpoint_id(config))
        return None if stored is None else self._tuple(config, stored)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async twin of :meth:`list`."""
        async for stored in self._store.alist_checkpoints(self._list_query(config, filter, before, limit)):
            item = self._listed(config, stored)
            if item is not None:
                yield item

    async def aput(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, new_versions: ChannelVersions
    ) -> RunnableConfig:
        """Async twin of :meth:`put`."""
        record = self._record(config, checkpoint, metadata, new_versions)
        await self._store.aput(record)
        return self._saved_config(config, record.thread_id, record.checkpoint_ns, record.checkpoint_id)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Async twin of :meth:`put_writes`."""
        await self._store.aput_writes(*self._write_args(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        """Async twin of :meth:`delete_thread`."""
        await self._store.adelete_thread(self._tenant_only(), str(thread_id), str(uuid6(clock_seq=-1)))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async twin of :meth:`delete_for_runs`."""
        await self._store.adelete_for_runs(self._tenant_only(), [str(r) for r in run_ids])

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async twin of :meth:`copy_thread`."""
        await self._store.acopy_thread(self._tenant_only(), str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async twin of :meth:`prune`."""
        await self._store.aprune(self._tenant_only(), [str(t) for t in thread_ids], strategy, str(uuid6(clock_seq=-1)))
