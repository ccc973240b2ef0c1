"""A durable workflow run's journal of runtime ticks in the Sutram SQL database.

The storage under ``sutram_adapters.llama_index.durable``, kept framework-free: a tick is
JSON text, numbered from 0 per (tenant, run). An append is fenced: it is written only while
the appending worker holds the run (its fence is the run's and the run is running), in the
same transaction that checks it, so a worker whose lease was taken over cannot add to the
journal the new owner replays.
"""

from __future__ import annotations

from sqlalchemy import text

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.errors import LeaseLostError
from sutram_core.memory.records import now_micros

__all__ = ["SqlWorkflowJournal"]


class SqlWorkflowJournal:
    """Append and read the ticks of durable workflow runs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, tenant: str, run_id: str, fence: int, rows: list[tuple[int, str, str | None]]) -> None:
        """Write ticks ``(seq, tick, state)`` of the run (``state``: the run's state after the
        tick, or None) in one transaction if this worker (``fence``) still holds the run;
        else :class:`LeaseLostError` and nothing is written."""
        lock = " FOR UPDATE" if self.db.backend == "postgresql" else ""

        def plan() -> Plan[None]:
            # the run's row is locked (PostgreSQL) or the database is (SQLite) until commit:
            # a claim by another worker waits for this append, then replays it
            found = yield Step(text(f"SELECT fence, status FROM sutram_runs WHERE tenant_id = :t AND run_id = :r{lock}"),
                               {"t": tenant, "r": run_id})
            if not found or int(found[0][0]) != fence or found[0][1] != "running":
                held = f"{found[0][1]} with fence {found[0][0]}" if found else "gone"
                raise LeaseLostError(f"cannot journal run {run_id!r}: it is {held}, this worker holds fence {fence}; "
                                     "stop working on it")
            at = now_micros()
            yield Step(text("INSERT INTO sutram_workflow_journal (tenant_id, run_id, seq, tick, state, recorded_at) "
                            "VALUES (:t, :r, :s, :k, :st, :at)"),
                       [{"t": tenant, "r": run_id, "s": seq, "k": tick, "st": state, "at": at}
                        for seq, tick, state in rows])

        if rows:
            self.db.run(plan())

    def ticks(self, tenant: str, run_id: str) -> tuple[list[tuple[int, str]], str | None]:
        """The run's ticks as (seq, JSON text), in order, and the newest state kept."""
        def plan() -> Plan[tuple[list[tuple[int, str]], str | None]]:
            rows = yield Step(text("SELECT seq, tick, state FROM sutram_workflow_journal "
                                   "WHERE tenant_id = :t AND run_id = :r ORDER BY seq"), {"t": tenant, "r": run_id})
            state = next((str(r[2]) for r in reversed(rows) if r[2] is not None), None)
            return [(int(r[0]), str(r[1])) for r in rows], state

        return self.db.run(plan(), write=False)
