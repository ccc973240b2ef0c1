"""Workflow handlers, their events, ticks and state in the Sutram SQL database.

The storage under the LlamaIndex workflow server's handler store
(``sutram_adapters.llama_index.workflow_store``), kept framework-free: handlers are
:class:`HandlerRow` values, events and ticks are JSON text, times are microseconds since
the epoch. Every statement names the tenant; none reads or writes across tenants.

Events and ticks are numbered 0, 1, 2, ... per (tenant, run) by the INSERT itself
(``MAX(sequence) + 1`` in the same statement). SQLite's single writer serializes two
appends to one run; on PostgreSQL an advisory transaction lock on the run does, so
concurrent writers in several processes never take the same number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement, Executable

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.schema import workflow_events as _ev
from sutram_core.backends.sql.schema import workflow_handlers as _wh
from sutram_core.backends.sql.schema import workflow_state as _ws
from sutram_core.backends.sql.schema import workflow_ticks as _tk
from sutram_core.errors import InvalidRunError
from sutram_core.memory.records import now_micros

__all__ = ["HandlerFilter", "HandlerRow", "LogEntry", "SqlWorkflowHandlers", "StateRow", "namespace_key"]

# PostgreSQL advisory locks with two 32-bit keys (a key space apart from the one-key lock
# that serializes migrations): (class, hashtext(tenant + run)) per append log
_PG_EVENTS_LOCK = 0x57464556  # "WFEV"
_PG_TICKS_LOCK = 0x5746544B  # "WFTK"


@dataclass(frozen=True, slots=True)
class HandlerRow:
    """One workflow handler as stored. ``result`` is JSON text; times are microseconds."""

    handler_id: str
    workflow_name: str
    status: str
    run_id: str | None = None
    error: str | None = None
    result: str | None = None
    started_at: int | None = None
    updated_at: int | None = None
    completed_at: int | None = None
    idle_since: int | None = None


@dataclass(frozen=True, slots=True)
class HandlerFilter:
    """Which handlers a query or delete takes: every given list must contain the handler's
    value (an empty list matches nothing); ``idle`` True takes handlers with an
    ``idle_since``, False those without; None (the default) does not filter."""

    handler_ids: Sequence[str] | None = None
    run_ids: Sequence[str] | None = None
    workflow_names: Sequence[str] | None = None
    statuses: Sequence[str] | None = None
    idle: bool | None = None

    @property
    def matches_nothing(self) -> bool:
        return any(v is not None and len(v) == 0
                   for v in (self.handler_ids, self.run_ids, self.workflow_names, self.statuses))

    @property
    def is_empty(self) -> bool:
        return (self.handler_ids is None and self.run_ids is None and self.workflow_names is None
                and self.statuses is None and self.idle is None)

    def clauses(self, tenant: str) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [_wh.c.tenant_id == tenant]
        for column, values in ((_wh.c.handler_id, self.handler_ids), (_wh.c.run_id, self.run_ids),
                               (_wh.c.workflow_name, self.workflow_names), (_wh.c.status, self.statuses)):
            if values is not None:
                where.append(column.in_(list(values)))
        if self.idle is not None:
            where.append(_wh.c.idle_since.isnot(None) if self.idle else _wh.c.idle_since.is_(None))
        return where


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event or tick of a run: its number in the run, when it was stored, its JSON."""

    run_id: str
    sequence: int
    recorded_at: int
    data: str


@dataclass(frozen=True, slots=True)
class StateRow:
    """A run's stored state in one namespace (``state`` as the workflow serializer wrote it)."""

    state: str
    state_type: str | None
    state_module: str | None


def namespace_key(namespace: Sequence[str]) -> str:
    """The stored key of a state namespace: the JSON list of its labels (``"[]"`` for the
    root), so ``("a/b",)`` and ``("a", "b")`` stay apart.

    >>> namespace_key(("child", "a/b"))
    '["child", "a/b"]'
    """
    if isinstance(namespace, str) or not all(isinstance(label, str) for label in namespace):
        raise InvalidRunError(f"a state namespace is a tuple of strings, not {namespace!r}")
    return json.dumps(list(namespace))


_HANDLER_COLUMNS = (_wh.c.handler_id, _wh.c.workflow_name, _wh.c.status, _wh.c.run_id, _wh.c.error, _wh.c.result,
                    _wh.c.started_at, _wh.c.updated_at, _wh.c.completed_at, _wh.c.idle_since)
_UPDATED = ("workflow_name", "status", "run_id", "error", "started_at", "updated_at", "completed_at", "idle_since")


def _handler(row: Sequence[Any]) -> HandlerRow:
    return HandlerRow(*row)


class SqlWorkflowHandlers:
    """Workflow handlers, events, ticks and state of every tenant in one Sutram database.

    >>> store = SqlWorkflowHandlers(Database("sqlite:///.sutram/sutram.db"))          # doctest: +SKIP
    >>> store.put_handler("acme", HandlerRow("h1", "greet", "running", run_id="r1"))  # doctest: +SKIP
    >>> store.append_event("acme", "r1", '{"type": "StartEvent"}')                   # doctest: +SKIP
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        P = bindparam
        insert = postgresql.insert if db.backend == "postgresql" else sqlite.insert
        values: dict[str, Any] = {"tenant_id": P("t"), **{c.name: P(c.name) for c in _HANDLER_COLUMNS}}
        upsert = insert(_wh).values(values)
        replace = {name: upsert.excluded[name] for name in _UPDATED}
        target = [_wh.c.tenant_id, _wh.c.handler_id]
        self._q_put = db.prepare(upsert.on_conflict_do_update(
            index_elements=target, set_={**replace, "result": upsert.excluded.result}))
        # a handler read back without its result (it could not be decoded) keeps the stored one
        self._q_put_keep_result = db.prepare(upsert.on_conflict_do_update(index_elements=target, set_=replace))
        self._q_events = self._log_statements(_ev, _ev.c.event)
        self._q_ticks = self._log_statements(_tk, _tk.c.tick)
        in_state = (_ws.c.tenant_id == P("t"), _ws.c.run_id == P("r"))
        self._q_state = db.prepare(select(_ws.c.state, _ws.c.state_type, _ws.c.state_module)
                                   .where(*in_state, _ws.c.namespace == P("ns")))
        self._q_run_states = db.prepare(select(_ws.c.namespace, _ws.c.state, _ws.c.state_type, _ws.c.state_module)
                                        .where(*in_state))
        state_upsert = insert(_ws).values(tenant_id=P("t"), run_id=P("r"), namespace=P("ns"), state=P("state"),
                                          state_type=P("type"), state_module=P("module"), updated_at=P("now"))
        self._q_put_state = db.prepare(state_upsert.on_conflict_do_update(
            index_elements=[_ws.c.tenant_id, _ws.c.run_id, _ws.c.namespace],
            set_={name: state_upsert.excluded[name] for name in ("state", "state_type", "state_module",
                                                                 "updated_at")}))

    def _log_statements(self, table: Any, data: Any) -> dict[str, Executable | Any]:
        P = bindparam
        in_run = (table.c.tenant_id == P("t"), table.c.run_id == P("r"))
        next_seq = select(func.coalesce(func.max(table.c.sequence), -1) + 1).where(*in_run).scalar_subquery()
        read = select(table.c.sequence, table.c.recorded_at, data).where(*in_run, table.c.sequence > P("after"))
        return {
            "append": self.db.prepare(table.insert().values(
                {"tenant_id": P("t"), "run_id": P("r"), "sequence": next_seq, "recorded_at": P("now"),
                 data.name: P("data")})),
            "all": self.db.prepare(read.order_by(table.c.sequence)),
            "page": self.db.prepare(read.order_by(table.c.sequence).limit(P("n"))),
        }

    # -- handlers ------------------------------------------------------------------------

    def put_handler(self, tenant: str, row: HandlerRow, *, keep_stored_result: bool = False) -> None:
        """Insert the handler or replace every field of the stored one with the same id (its
        place in the order stays). ``keep_stored_result`` keeps the stored result instead of
        ``row.result``."""
        params = {"t": tenant, **{c.name: getattr(row, c.name) for c in _HANDLER_COLUMNS}}
        statement = self._q_put_keep_result if keep_stored_result else self._q_put

        def plan() -> Plan[None]:
            yield Step(statement, params)

        self.db.run(plan())

    def handlers(self, tenant: str, which: HandlerFilter) -> list[HandlerRow]:
        """The tenant's handlers that ``which`` takes, in the order they were first stored."""
        if which.matches_nothing:
            return []
        statement = select(*_HANDLER_COLUMNS).where(*which.clauses(tenant)).order_by(_wh.c.pk)

        def plan() -> Plan[list[HandlerRow]]:
            rows = yield Step(statement)
            return [_handler(r) for r in rows]

        return self.db.run(plan(), write=False)

    def delete_handlers(self, tenant: str, which: HandlerFilter) -> int:
        """Delete the tenant's handlers that ``which`` takes; return how many. A filter that
        names nothing deletes nothing (never the whole table by accident)."""
        if which.matches_nothing or which.is_empty:
            return 0
        statement = delete(_wh).where(*which.clauses(tenant))

        def plan() -> Plan[int]:
            return int((yield Step(statement)))

        return self.db.run(plan())

    def set_handler_status(self, tenant: str, run_id: str, changes: dict[str, Any]) -> int:
        """Set ``changes`` (column -> value) on the tenant's handlers of ``run_id`` in one
        statement; return how many handlers there were."""
        statement = update(_wh).where(_wh.c.tenant_id == tenant, _wh.c.run_id == run_id).values(changes)

        def plan() -> Plan[int]:
            return int((yield Step(statement)))

        return self.db.run(plan())

    # -- events and ticks ----------------------------------------------------------------

    def _append(self, statements: dict[str, Any], lock: int, tenant: str, run_id: str, data: str) -> None:
        def plan() -> Plan[None]:
            if self.db.backend == "postgresql":
                yield Step(select(func.pg_advisory_xact_lock(lock, func.hashtext(bindparam("k")))),
                           {"k": f"{tenant}\x1f{run_id}"})
            yield Step(statements["append"], {"t": tenant, "r": run_id, "now": now_micros(), "data": data})

        self.db.run(plan())

    def _read(self, statements: dict[str, Any], tenant: str, run_id: str, after: int | None,
              limit: int | None) -> list[LogEntry]:
        params: dict[str, Any] = {"t": tenant, "r": run_id, "after": -1 if after is None else after}
        if limit is not None:
            params["n"] = limit

        def plan() -> Plan[list[LogEntry]]:
            rows = yield Step(statements["all" if limit is None else "page"], params)
            return [LogEntry(run_id, int(seq), int(at), str(data)) for seq, at, data in rows]

        return self.db.run(plan(), write=False)

    def append_event(self, tenant: str, run_id: str, event: str) -> None:
        """Store ``event`` (JSON text) as the run's next event."""
        self._append(self._q_events, _PG_EVENTS_LOCK, tenant, run_id, event)

    def events(self, tenant: str, run_id: str, *, after: int | None = None,
               limit: int | None = None) -> list[LogEntry]:
        """The run's events numbered above ``after``, in order, at most ``limit``."""
        return self._read(self._q_events, tenant, run_id, after, limit)

    def append_tick(self, tenant: str, run_id: str, tick: str) -> None:
        """Store ``tick`` (JSON text) as the run's next tick."""
        self._append(self._q_ticks, _PG_TICKS_LOCK, tenant, run_id, tick)

    def ticks(self, tenant: str, run_id: str, *, after: int | None = None,
              limit: int | None = None) -> list[LogEntry]:
        """The run's ticks numbered above ``after``, in order, at most ``limit``."""
        return self._read(self._q_ticks, tenant, run_id, after, limit)

    # -- state ---------------------------------------------------------------------------

    def load_state(self, tenant: str, run_id: str, namespace: str) -> StateRow | None:
        """The run's state in ``namespace`` (a :func:`namespace_key`), or None."""
        def plan() -> Plan[StateRow | None]:
            rows = yield Step(self._q_state, {"t": tenant, "r": run_id, "ns": namespace})
            return StateRow(str(rows[0][0]), rows[0][1], rows[0][2]) if rows else None

        return self.db.run(plan(), write=False)

    def save_state(self, tenant: str, run_id: str, namespace: str, row: StateRow) -> None:
        """Store the run's state in ``namespace``, replacing what was there."""
        def plan() -> Plan[None]:
            yield Step(self._q_put_state, {"t": tenant, "r": run_id, "ns": namespace, "state": row.state,
                                           "type": row.state_type, "module": row.state_module,
                                           "now": now_micros()})

        self.db.run(plan())

    def copy_state(self, tenant: str, source_run: str, target_run: str) -> int:
        """Copy every namespace of ``source_run``'s state onto ``target_run`` (same tenant),
        in one transaction; namespaces the source lacks keep the target's. Return how many."""
        def plan() -> Plan[int]:
            rows = yield Step(self._q_run_states, {"t": tenant, "r": source_run})
            if rows:
                now = now_micros()
                yield Step(self._q_put_state, [
                    {"t": tenant, "r": target_run, "ns": ns, "state": state, "type": type_, "module": module,
                     "now": now} for ns, state, type_, module in rows])
            return len(rows)

        return self.db.run(plan())
