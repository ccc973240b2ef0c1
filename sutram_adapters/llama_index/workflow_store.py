"""The LlamaIndex workflow server's handler store on Sutram.

:class:`SutramWorkflowStore` implements ``llama_agents.server.AbstractWorkflowStore``: the
server's workflow handlers, the events each run publishes, the runtime's ticks and each
run's workflow state live in Sutram's database (a SQLite file, or PostgreSQL for several
server processes), scoped to one tenant. A server restarted on the same database finds its
handlers and resumes their runs; another tenant on the same database sees none of them.

>>> from llama_agents.server import WorkflowServer                              # doctest: +SKIP
>>> store = SutramWorkflowStore.from_url("sqlite:///.sutram/sutram.db", tenant="acme")  # doctest: +SKIP
>>> server = WorkflowServer(workflow_store=store)                               # doctest: +SKIP

Everything is stored as JSON (results and state through the workflow's ``JsonSerializer``,
events and ticks as the framework's models dump them); nothing is pickled, and a
``PickleSerializer`` is refused. Blocking database work runs on the database's own threads,
never on the event loop.

Behaviour where the interface leaves a choice (the SQL stores shipped with the server
choose the same): ``query`` returns handlers in the order they were first stored;
``delete`` with an empty ``HandlerQuery`` deletes nothing and returns 0; deleting a handler
leaves its run's events, ticks and state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, get_args

from sutram_core.errors import (
    ConfigurationError,
    InvalidRunError,
    MissingDependencyError,
    StorageError,
    TenantError,
)
from sutram_core.tenancy import DEFAULT_TENANT, validate_tenant

try:  # the llama-server extra
    from llama_agents.client.protocol.serializable_events import (  # type: ignore[import-untyped]
        EventEnvelopeWithMetadata,
    )
    from llama_agents.server._store.abstract_workflow_store import (
        _UNSET,
        AbstractWorkflowStore,
        HandlerQuery,
        PersistentHandler,
        Status,
        StoredEvent,
        StoredTick,
        _Unset,
        decode_persistent_handler,
        is_terminal_status,
    )
    from pydantic import ValidationError
    from workflows.context import JsonSerializer
    from workflows.context.serializers import BaseSerializer, PickleSerializer
    from workflows.context.state_store import StateRecord, StateStoreFacade
    from workflows.events import StopEvent
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("llama-agents-server", "llama-server") from exc

from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.workflow_handlers import (
    HandlerFilter,
    HandlerRow,
    LogEntry,
    SqlWorkflowHandlers,
    StateRow,
    namespace_key,
)

__all__ = ["SutramStateHandle", "SutramWorkflowStore"]

logger = logging.getLogger(__name__)

_STATUSES: frozenset[str] = frozenset(get_args(Status))
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_TICK_PAGE = 100  # ticks read per query by stream_ticks


# -- translating between the server's models and stored rows (no I/O) ------------------


def _micros(moment: object, field: str) -> int | None:
    """A datetime as exact microseconds since the epoch (naive means UTC, as PostgreSQL's
    ``timestamptz`` takes it)."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise InvalidRunError(f"handler field {field} must be a datetime or None, not {moment!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _MICROSECOND


def _at(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else _at(micros)


def _text(value: object, what: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise InvalidRunError(f"{what} must be a {'' if empty else 'non-empty '}string, not {value!r}")
    if "\x00" in value:
        raise InvalidRunError(f"{what} contains a NUL character, which PostgreSQL cannot store: {value!r}")
    return value


def _run_id(run_id: object) -> str:
    return _text(run_id, "run_id", empty=False)


def _strings(values: object, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, (list, tuple, set, frozenset)):
        raise InvalidRunError(f"HandlerQuery.{what} must be a list of strings or None, not {values!r}")
    return [_text(v, f"HandlerQuery.{what} item") for v in values]


def _filter(query: object) -> HandlerFilter:
    if not isinstance(query, HandlerQuery):
        raise InvalidRunError(f"expected a HandlerQuery, not {type(query).__name__}")
    if query.is_idle is not None and not isinstance(query.is_idle, bool):
        raise InvalidRunError(f"HandlerQuery.is_idle must be True, False or None, not {query.is_idle!r}")
    return HandlerFilter(handler_ids=_strings(query.handler_id_in, "handler_id_in"),
                         run_ids=_strings(query.run_id_in, "run_id_in"),
                         workflow_names=_strings(query.workflow_name_in, "workflow_name_in"),
                         statuses=_strings(query.status_in, "status_in"), idle=query.is_idle)


def _status(status: object) -> str:
    if status not in _STATUSES:
        raise InvalidRunError(f"handler status must be one of {sorted(_STATUSES)}, not {status!r}")
    return str(status)


def _result_json(result: object) -> str | None:
    if result is None:
        return None
    if not isinstance(result, StopEvent):
        raise InvalidRunError(f"a handler's result must be a StopEvent or None, not {type(result).__name__}")
    try:
        return JsonSerializer().serialize(result)
    except (TypeError, ValueError) as exc:
        raise InvalidRunError(f"the handler's result cannot be stored as JSON: {exc}") from exc


def _row(handler: object) -> HandlerRow:
    if not isinstance(handler, PersistentHandler):
        raise InvalidRunError(f"expected a PersistentHandler, not {type(handler).__name__}")
    error = handler.error
    return HandlerRow(
        handler_id=_text(handler.handler_id, "handler_id", empty=False),
        workflow_name=_text(handler.workflow_name, "workflow_name"),
        status=_status(handler.status),
        run_id=None if handler.run_id is None else _run_id(handler.run_id),
        error=None if error is None else _text(error, "error"),
        result=_result_json(handler.result),
        started_at=_micros(handler.started_at, "started_at"),
        updated_at=_micros(handler.updated_at, "updated_at"),
        completed_at=_micros(handler.completed_at, "completed_at"),
        idle_since=_micros(handler.idle_since, "idle_since"),
    )


def _json_text(value: object, what: str) -> str:
    try:
        # allow_nan=False: NaN and infinity are not JSON, and PostgreSQL would refuse them later
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRunError(f"{what} cannot be stored as JSON: {exc}") from exc


def _decode_error(what: str, entry: LogEntry, exc: Exception) -> StorageError:
    return StorageError(f"stored {what} {entry.sequence} of run {entry.run_id!r} cannot be decoded ({exc}); "
                        "the row is intact: inspect or repair it in the database")


def _event(entry: LogEntry) -> StoredEvent:
    try:
        event = EventEnvelopeWithMetadata.model_validate_json(entry.data)
    except ValidationError as exc:
        raise _decode_error("event", entry, exc) from exc
    return StoredEvent(run_id=entry.run_id, sequence=entry.sequence, timestamp=_at(entry.recorded_at),
                       event=event)


def _tick(entry: LogEntry) -> StoredTick:
    try:
        data = json.loads(entry.data)
    except ValueError as exc:
        raise _decode_error("tick", entry, exc) from exc
    return StoredTick(run_id=entry.run_id, sequence=entry.sequence, timestamp=_at(entry.recorded_at),
                      tick_data=data)


def _bounds(after_sequence: object, limit: object) -> tuple[int | None, int | None]:
    for name, value in (("after_sequence", after_sequence), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidRunError(f"{name} must be an integer or None, not {value!r}")
    if limit is not None and limit < 0:  # type: ignore[operator]
        raise InvalidRunError(f"limit must be 0 or more, not {limit!r}")
    return after_sequence, limit  # type: ignore[return-value]


def _refuse_pickle(serializer: BaseSerializer | None) -> None:
    if isinstance(serializer, PickleSerializer):
        raise ConfigurationError("SutramWorkflowStore stores workflow state as JSON and never unpickles: "
                                 "use JsonSerializer (the default) instead of PickleSerializer")


# -- workflow state ----------------------------------------------------------------------


@dataclass(frozen=True)
class SutramStateHandle:
    """Where a run's state lives in Sutram: what a durable state store hands over instead
    of its data (``{"store_type": "sutram", "tenant": ..., "run_id": ...}``)."""

    tenant: str
    run_id: str


class _SutramStateStorage:
    """Raw state of one (tenant, run, namespace), for the framework's ``StateStoreFacade``."""

    def __init__(self, handlers: SqlWorkflowHandlers, tenant: str, run_id: str,
                 namespace: tuple[str, ...]) -> None:
        self._handlers = handlers
        self._tenant = tenant
        self._run_id = run_id
        self._namespace = namespace_key(namespace)

    @property
    def run_id(self) -> str:
        return self._run_id

    async def load(self) -> StateRecord | None:
        row = await self._handlers.db.offload(self._handlers.load_state, self._tenant, self._run_id, self._namespace)
        return None if row is None else StateRecord(data=row.state, state_type=row.state_type,
                                                     state_module=row.state_module)

    async def save(self, record: StateRecord) -> None:
        data = record.data if isinstance(record.data, str) else _json_text(record.data, "workflow state")
        row = StateRow(data, record.state_type, record.state_module)
        await self._handlers.db.offload(self._handlers.save_state, self._tenant, self._run_id, self._namespace, row)

    def session(self) -> _Session:
        # every load and save is its own transaction: nothing to hold between them
        return _Session(self)

    def to_handle(self) -> dict[str, Any]:
        return {"store_type": "sutram", "tenant": self._tenant, "run_id": self._run_id}

    def parse_own_handle(self, payload: dict[str, Any]) -> SutramStateHandle | None:
        if payload.get("store_type") != "sutram":
            return None
        tenant, run_id = payload.get("tenant"), payload.get("run_id")
        if tenant != self._tenant:
            # a handle names where state lives; following one into another tenant would read its data
            raise TenantError(f"workflow state handle of tenant {tenant!r} given to a store of tenant "
                              f"{self._tenant!r}; hand state over within one tenant")
        return SutramStateHandle(self._tenant, _run_id(run_id))

    async def copy_from_handle(self, handle: SutramStateHandle) -> None:
        await self._handlers.db.offload(self._handlers.copy_state, self._tenant, handle.run_id, self._run_id)


class _Session:
    def __init__(self, storage: _SutramStateStorage) -> None:
        self._storage = storage

    async def __aenter__(self) -> _SutramStateStorage:
        return self._storage

    async def __aexit__(self, *exc: object) -> None:
        return None


# -- the store ---------------------------------------------------------------------------


class SutramWorkflowStore(AbstractWorkflowStore):
    """``AbstractWorkflowStore`` on Sutram's database, for one tenant.

    ``url`` is a Sutram URL (``sqlite:///path`` or ``postgresql://...``; default
    ``SUTRAM_URL``), or pass an open ``database``. ``poll_interval`` is how often
    ``subscribe_events`` looks for events written by another process (events appended
    through this store object wake its subscribers at once).

    >>> async with SutramWorkflowStore.from_url("sqlite:///app.db", tenant="acme") as store:  # doctest: +SKIP
    ...     handlers = await store.query(HandlerQuery(status_in=["running"]))
    """

    def __init__(self, url: str | None = None, *, tenant: str = DEFAULT_TENANT, database: Database | None = None,
                 poll_interval: float = 0.5) -> None:
        super().__init__()
        self.tenant = validate_tenant(tenant)
        if database is not None and url is not None:
            raise ConfigurationError("pass url or database, not both")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or not poll_interval > 0:
            raise ConfigurationError(f"poll_interval must be a positive number of seconds, not {poll_interval!r}")
        self.poll_interval = float(poll_interval)
        self._owns_db = database is None
        self._handlers = SqlWorkflowHandlers(database if database is not None else Database(url))
        self._conditions: weakref.WeakValueDictionary[str, asyncio.Condition] = weakref.WeakValueDictionary()

    @classmethod
    def from_url(cls, url: str | None = None, *, tenant: str = DEFAULT_TENANT, **kwargs: Any) -> SutramWorkflowStore:
        """A store for ``url``, usable as an ``async with`` (or ``with``) context manager."""
        return cls(url, tenant=tenant, **kwargs)

    def for_tenant(self, tenant: str) -> SutramWorkflowStore:
        """A store of ``tenant`` sharing this one's database."""
        return SutramWorkflowStore(tenant=tenant, database=self.database, poll_interval=self.poll_interval)

    @property
    def database(self) -> Database:
        """The database this store reads and writes."""
        return self._handlers.db

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Create or upgrade Sutram's schema (idempotent; the server calls it on start)."""
        await self.database.asetup()

    def close(self) -> None:
        """Release the database connections if this store opened them."""
        if self._owns_db:
            self.database.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        self.close()

    def __enter__(self) -> SutramWorkflowStore:
        self.database.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SutramWorkflowStore:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    async def _offload(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.database.offload(fn, self.tenant, *args, **kwargs)

    # -- handlers ----------------------------------------------------------------------

    def _handler(self, row: HandlerRow) -> PersistentHandler:
        data: dict[str, Any] = {
            "handler_id": row.handler_id, "workflow_name": row.workflow_name, "status": row.status,
            "run_id": row.run_id, "error": row.error, "result": None, "started_at": _moment(row.started_at),
            "updated_at": _moment(row.updated_at), "completed_at": _moment(row.completed_at),
            "idle_since": _moment(row.idle_since),
        }
        if row.result is not None:
            try:
                data["result"] = json.loads(row.result)
            except ValueError:
                # flagged as the interface does for a result it cannot decode, never passed off as None
                handler = PersistentHandler.model_validate(data)
                handler.result_unreadable = True
                logger.warning("stored result of handler %r is not JSON", row.handler_id)
                return handler
        return decode_persistent_handler(data, self.result_decoder)

    async def query(self, query: HandlerQuery) -> list[PersistentHandler]:
        """The tenant's handlers matching every filter of ``query`` (an empty list in a filter
        matches nothing), in the order they were first stored."""
        which = _filter(query)
        rows = await self._offload(self._handlers.handlers, which)
        return [self._handler(r) for r in rows]

    async def update(self, handler: PersistentHandler) -> None:
        """Insert the handler, or replace every field of the stored one with its id. A handler
        read back with ``result_unreadable`` keeps the result stored for it."""
        row = _row(handler)
        keep = bool(handler.result_unreadable) and handler.result is None
        await self._offload(self._handlers.put_handler, row, keep_stored_result=keep)

    async def delete(self, query: HandlerQuery) -> int:
        """Delete the tenant's handlers matching ``query``; return how many. An empty query
        deletes nothing (0). The runs' events, ticks and state stay."""
        return int(await self._offload(self._handlers.delete_handlers, _filter(query)))

    async def update_handler_status(self, run_id: str, *, status: Status | None = None,
                                    result: StopEvent | None = None, error: str | None = None,
                                    idle_since: datetime | _Unset | None = _UNSET) -> None:
        """Set the status (and the given fields) of the run's handler in one statement, as the
        interface describes: ``updated_at`` is now, ``completed_at`` too for a final status.
        Fields not given keep their stored value (a stored result the server cannot decode
        included). An unknown run is logged and skipped."""
        now = _micros(datetime.now(timezone.utc), "updated_at")
        changes: dict[str, Any] = {"updated_at": now}
        if status is not None:
            changes["status"] = _status(status)
            if is_terminal_status(status):
                changes["completed_at"] = now
        if result is not None:
            changes["result"] = _result_json(result)
        if error is not None:
            changes["error"] = _text(error, "error")
        if not isinstance(idle_since, _Unset):
            changes["idle_since"] = _micros(idle_since, "idle_since")
        if not await self._offload(self._handlers.set_handler_status, _run_id(run_id), changes):
            logger.warning("update_handler_status: run %s not found in tenant %s, skipping", run_id, self.tenant)

    # -- events ------------------------------------------------------------------------

    def _condition(self, run_id: str) -> asyncio.Condition:
        condition = self._conditions.get(run_id)
        if condition is None:
            condition = self._conditions[run_id] = asyncio.Condition()
        return condition

    async def append_event(self, run_id: str, event: EventEnvelopeWithMetadata) -> None:
        """Store ``event`` as the run's next event (numbered 0, 1, 2, ...) and wake this
        store's subscribers of the run."""
        if not isinstance(event, EventEnvelopeWithMetadata):
            raise InvalidRunError(f"expected an EventEnvelopeWithMetadata, not {type(event).__name__}")
        try:
            data = event.model_dump_json()
        except (TypeError, ValueError) as exc:
            raise InvalidRunError(f"the event cannot be stored as JSON: {exc}") from exc
        await self._offload(self._handlers.append_event, _run_id(run_id), data)
        condition = self._conditions.get(run_id)
        if condition is not None:
            async with condition:
                condition.notify_all()

    async def query_events(self, run_id: str, after_sequence: int | None = None,
                           limit: int | None = None) -> list[StoredEvent]:
        """The run's events numbered above ``after_sequence``, in order, at most ``limit``."""
        after, most = _bounds(after_sequence, limit)
        entries = await self._offload(self._handlers.events, _run_id(run_id), after=after, limit=most)
        return [_event(e) for e in entries]

    async def subscribe_events(self, run_id: str, after_sequence: int = -1) -> AsyncIterator[StoredEvent]:
        """Yield the run's events numbered above ``after_sequence`` as they are stored, until a
        terminal event (a ``StopEvent``) has been yielded. Events appended through this store
        object arrive at once; those of other processes within ``poll_interval``."""
        condition = self._condition(run_id)
        cursor = after_sequence
        while True:
            async with condition:
                batch = await self.query_events(run_id, after_sequence=cursor)
                if not batch:
                    try:
                        await asyncio.wait_for(condition.wait(), timeout=self.poll_interval)
                    except asyncio.TimeoutError:
                        pass
                    continue
            for event in batch:
                yield event
                cursor = event.sequence
                if self._is_terminal_event(event):
                    return

    # -- ticks -------------------------------------------------------------------------

    async def append_tick(self, run_id: str, tick_data: dict[str, Any]) -> None:
        """Store ``tick_data`` (JSON) as the run's next tick (numbered 0, 1, 2, ...)."""
        if not isinstance(tick_data, dict):
            raise InvalidRunError(f"tick_data must be a dict, not {type(tick_data).__name__}")
        await self._offload(self._handlers.append_tick, _run_id(run_id), _json_text(tick_data, "tick_data"))

    async def get_ticks(self, run_id: str) -> list[StoredTick]:
        """Every tick of the run, in order."""
        return [_tick(e) for e in await self._offload(self._handlers.ticks, _run_id(run_id))]

    async def stream_ticks(self, run_id: str) -> AsyncIterator[StoredTick]:
        """The run's ticks in order, read a page at a time."""
        after: int | None = None
        while True:
            page: Sequence[LogEntry] = await self._offload(self._handlers.ticks, _run_id(run_id), after=after,
                                                           limit=_TICK_PAGE)
            for entry in page:
                yield _tick(entry)
            if len(page) < _TICK_PAGE:
                return
            after = page[-1].sequence

    # -- state -------------------------------------------------------------------------

    def create_state_store(self, run_id: str, state_type: type[Any] | None = None,
                           serialized_state: dict[str, Any] | None = None,
                           serializer: BaseSerializer | None = None,
                           namespace: tuple[str, ...] = ()) -> Any:
        """The run's state store in ``namespace`` (one per run and namespace in this process),
        as the interface describes; a ``PickleSerializer`` is refused."""
        _refuse_pickle(serializer)
        return super().create_state_store(run_id, state_type, serialized_state, serializer, namespace)

    def _build_state_store(self, run_id: str, namespace: tuple[str, ...], state_type: type[Any] | None,
                           serializer: BaseSerializer | None) -> StateStoreFacade[Any]:
        _refuse_pickle(serializer)
        storage = _SutramStateStorage(self._handlers, self.tenant, _run_id(run_id), tuple(namespace))
        return StateStoreFacade(storage, state_type, serializer)
