"""The SQL call journal (SQLite and PostgreSQL): first entry per key wins."""

from __future__ import annotations

from sqlalchemy import text

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.memory.records import now_micros
from sutram_core.runs.journal import JournalEntry, JournalKey, ns_shape

__all__ = ["SqlCallJournal"]

_KEY_WHERE = ("tenant_id = :t AND thread_id = :th AND checkpoint_ns = :ns AND task_id = :task "
              "AND call_index = :i")


def _params(key: JournalKey) -> dict[str, object]:
    return {"t": key.tenant_id, "th": key.thread_id, "ns": key.checkpoint_ns, "task": key.task_id,
            "i": key.call_index}


class SqlCallJournal:
    """Journal entries in the Sutram SQL database (see :mod:`sutram_core.runs.journal`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _get(self, key: JournalKey) -> Plan[JournalEntry | None]:
        rows = yield Step(text(
            "SELECT kind, name, input_hash, output, run_id, tokens, cost_usd, compensate FROM sutram_journal "
            f"WHERE {_KEY_WHERE}"
        ), _params(key))
        if not rows:
            return None
        kind, name, digest, output, run_id, tokens, cost, compensate = rows[0]
        return JournalEntry(kind, name, digest, output, run_id, int(tokens), float(cost), compensate)

    def get(self, key: JournalKey) -> JournalEntry | None:
        """The entry recorded for ``key``, or None."""
        return self.db.run(self._get(key), write=False)

    def put(self, key: JournalKey, entry: JournalEntry) -> JournalEntry:
        """Record ``entry`` unless one exists for ``key``; return the entry that is kept."""
        def plan() -> Plan[JournalEntry]:
            yield Step(text(
                "INSERT INTO sutram_journal (tenant_id, thread_id, checkpoint_ns, task_id, call_index, kind, name, "
                "input_hash, output, run_id, tokens, cost_usd, compensate, created_at) VALUES (:t, :th, :ns, :task, "
                ":i, :kind, :name, :h, :out, :run, :tok, :cost, :comp, :now) ON CONFLICT DO NOTHING"
            ), {**_params(key), "kind": entry.kind, "name": entry.name, "h": entry.input_hash, "out": entry.output,
                "run": entry.run_id, "tok": entry.tokens, "cost": entry.cost_usd, "comp": entry.compensate,
                "now": now_micros()})
            kept = yield from self._get(key)
            assert kept is not None
            return kept

        return self.db.run(plan())

    def find(self, tenant: str, thread_id: str, shape: str, call_index: int, digest: str) -> JournalEntry | None:
        """The earliest entry of a thread at call ``call_index`` of a task whose namespace has
        ``shape`` (see :func:`~sutram_core.runs.journal.ns_shape`) and whose input hash is
        ``digest``: the same call made at the same place of the graph."""
        def plan() -> Plan[JournalEntry | None]:
            rows = yield Step(text(
                "SELECT checkpoint_ns, kind, name, input_hash, output, run_id, tokens, cost_usd, compensate "
                "FROM sutram_journal WHERE tenant_id = :t AND thread_id = :th AND call_index = :i "
                "AND input_hash = :h ORDER BY created_at"
            ), {"t": tenant, "th": thread_id, "i": call_index, "h": digest})
            for ns, kind, name, h, out, run, tok, cost, comp in rows:
                if ns_shape(ns) == shape:
                    return JournalEntry(kind, name, h, out, run, int(tok), float(cost), comp)
            return None

        return self.db.run(plan(), write=False)

    def entries(self, tenant: str, thread_id: str) -> list[tuple[JournalKey, JournalEntry]]:
        """Every entry of a thread, in call order."""
        def plan() -> Plan[list[tuple[JournalKey, JournalEntry]]]:
            rows = yield Step(text(
                "SELECT checkpoint_ns, task_id, call_index, kind, name, input_hash, output, run_id, tokens, cost_usd, "
                "compensate, created_at FROM sutram_journal WHERE tenant_id = :t AND thread_id = :th "
                "ORDER BY created_at, checkpoint_ns, task_id, call_index"
            ), {"t": tenant, "th": thread_id})
            return [(JournalKey(tenant, thread_id, ns, task, int(i)),
                     JournalEntry(kind, name, h, out, run, int(tok), float(cost), comp, int(at)))
                    for ns, task, i, kind, name, h, out, run, tok, cost, comp, at in rows]

        return self.db.run(plan(), write=False)
