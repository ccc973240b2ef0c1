"""The SQL call journal (SQLite and PostgreSQL): first entry per key wins.

The statements a model call meets are compiled once (:meth:`Database.prepare`): a scope
reads its task's entries in one query, and recording a call is one INSERT.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.schema import journal as _jr
from sutram_core.memory.records import now_micros
from sutram_core.runs.journal import JournalEntry, JournalKey, ns_shape

__all__ = ["SqlCallJournal"]

_ENTRY = (_jr.c.kind, _jr.c.name, _jr.c.input_hash, _jr.c.output, _jr.c.run_id, _jr.c.tokens, _jr.c.cost_usd,
          _jr.c.compensate, _jr.c.created_at)


def _params(key: JournalKey) -> dict[str, object]:
    return {"t": key.tenant_id, "th": key.thread_id, "ns": key.checkpoint_ns, "task": key.task_id,
            "i": key.call_index}


def _entry(row: Any) -> JournalEntry:
    kind, name, digest, output, run_id, tokens, cost, compensate, created = row
    return JournalEntry(kind, name, digest, output, run_id, int(tokens), float(cost), compensate, int(created))


class SqlCallJournal:
    """Journal entries in the Sutram SQL database (see :mod:`sutram_core.runs.journal`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        P = bindparam
        in_task = (_jr.c.tenant_id == P("t"), _jr.c.thread_id == P("th"), _jr.c.checkpoint_ns == P("ns"),
                   _jr.c.task_id == P("task"))
        self._q_get = db.prepare(select(*_ENTRY).where(*in_task, _jr.c.call_index == P("i")))
        self._q_task = db.prepare(select(_jr.c.call_index, *_ENTRY).where(*in_task))
        insert = postgresql.insert if db.backend == "postgresql" else sqlite.insert
        self._q_put = db.prepare(insert(_jr).values(
            tenant_id=P("t"), thread_id=P("th"), checkpoint_ns=P("ns"), task_id=P("task"), call_index=P("i"),
            kind=P("kind"), name=P("name"), input_hash=P("h"), output=P("out"), run_id=P("run"), tokens=P("tok"),
            cost_usd=P("cost"), compensate=P("comp"), created_at=P("now"),
        ).on_conflict_do_nothing())

    def _get(self, key: JournalKey) -> Plan[JournalEntry | None]:
        rows = yield Step(self._q_get, _params(key))
        return _entry(rows[0]) if rows else None

    def get(self, key: JournalKey) -> JournalEntry | None:
        """The entry recorded for ``key``, or None."""
        return self.db.run(self._get(key), write=False)

    def task_entries(self, tenant: str, thread_id: str, checkpoint_ns: str, task_id: str) -> dict[int, JournalEntry]:
        """Every entry of one task, by call index."""
        def plan() -> Plan[dict[int, JournalEntry]]:
            rows = yield Step(self._q_task, {"t": tenant, "th": thread_id, "ns": checkpoint_ns, "task": task_id})
            return {int(row[0]): _entry(row[1:]) for row in rows}

        return self.db.run(plan(), write=False)

    def put(self, key: JournalKey, entry: JournalEntry) -> JournalEntry:
        """Record ``entry`` unless one exists for ``key``; return the entry that is kept."""
        now = now_micros()

        def plan() -> Plan[int]:
            # one statement (PostgreSQL: one round trip, no BEGIN/COMMIT)
            added = yield Step(self._q_put, {
                **_params(key), "kind": entry.kind, "name": entry.name, "h": entry.input_hash, "out": entry.output,
                "run": entry.run_id, "tok": entry.tokens, "cost": entry.cost_usd, "comp": entry.compensate,
                "now": now})
            return int(added)

        ours = JournalEntry(entry.kind, entry.name, entry.input_hash, entry.output, entry.run_id,
                            entry.tokens, entry.cost_usd, entry.compensate, now)
        if self.db.run(plan(), single=True) == 1:
            return ours
        # somebody recorded this call first: theirs counts (an entry is never changed; gone
        # only if its thread was deleted since, and then ours is as good as any)
        return self.get(key) or ours

    def find(self, tenant: str, thread_id: str, shape: str, call_index: int, digest: str) -> JournalEntry | None:
        """The earliest entry of a thread at call ``call_index`` of a task whose namespace has
        ``shape`` (see :func:`~sutram_core.runs.journal.ns_shape`) and whose input hash is
        ``digest``: the same call made at the same place of the graph."""
        def plan() -> Plan[JournalEntry | None]:
            rows = yield Step(text(
                "SELECT checkpoint_ns, kind, name, input_hash, output, run_id, tokens, cost_usd, compensate, "
                "created_at FROM sutram_journal WHERE tenant_id = :t AND thread_id = :th AND call_index = :i "
                "AND input_hash = :h ORDER BY created_at"
            ), {"t": tenant, "th": thread_id, "i": call_index, "h": digest})
            return next((_entry(row[1:]) for row in rows if ns_shape(row[0]) == shape), None)

        return self.db.run(plan(), write=False)

    def entries(self, tenant: str, thread_id: str) -> list[tuple[JournalKey, JournalEntry]]:
        """Every entry of a thread, in call order."""
        def plan() -> Plan[list[tuple[JournalKey, JournalEntry]]]:
            rows = yield Step(text(
                "SELECT checkpoint_ns, task_id, call_index, kind, name, input_hash, output, run_id, tokens, cost_usd, "
                "compensate, created_at FROM sutram_journal WHERE tenant_id = :t AND thread_id = :th "
                "ORDER BY created_at, checkpoint_ns, task_id, call_index"
            ), {"t": tenant, "th": thread_id})
            return [(JournalKey(tenant, thread_id, ns, task, int(i)), _entry(rest)) for ns, task, i, *rest in rows]

        return self.db.run(plan(), write=False)
