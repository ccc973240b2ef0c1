"""One run, two ids: a durable run's ledger id (what ``resume()`` takes) and the trace id of
each of its executions (a run resumed after a pause has one trace per execution). Each
trace's root names its ledger run (``sutram.run_id``); this module goes either way, so
``sutram runs show``, ``sutram trace`` and the console take whichever id the user has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sutram_core.backends.sql.runs import SqlRunLedger
from sutram_core.errors import RunNotFoundError
from sutram_core.runs import RunRecord
from sutram_core.traces.store import RunSummary, TraceStore

__all__ = ["RunIdentity", "resolve_run", "traces_of"]


@dataclass
class RunIdentity:
    """What an id names: the durable run (if any) and its traces, oldest first."""

    durable: RunRecord | None
    traces: list[RunSummary] = field(default_factory=list)

    @property
    def latest_trace(self) -> str | None:
        """The trace id of the newest execution."""
        return self.traces[-1].run_id if self.traces else None


def traces_of(traces: TraceStore, tenant: str, run: RunRecord) -> list[RunSummary]:
    """The traces of a durable run's executions, oldest first."""
    found = traces.runs(tenant, thread_id=run.thread_id, limit=500)
    return sorted((t for t in found if t.durable_run_id == run.run_id), key=lambda t: t.start_ns)


def resolve_run(ledger: SqlRunLedger, traces: TraceStore, tenant: str, run_id: str) -> RunIdentity:
    """The durable run and traces ``run_id`` names, as a ledger id or a trace id. Neither:
    an empty identity."""
    thread_id: str | None = None
    try:
        run: RunRecord | None = ledger.get(tenant, run_id)
    except RunNotFoundError:
        spans = traces.run_spans(tenant, run_id)
        root = next((s for s in spans if s.parent_id is None), None)
        if root is None:
            return RunIdentity(None)
        thread_id = root.thread_id
        durable_id = root.attributes.get("sutram.run_id")
        try:
            run = ledger.get(tenant, str(durable_id)) if durable_id else None
        except RunNotFoundError:
            run = None
    if run is None:
        summary = [t for t in traces.runs(tenant, thread_id=thread_id, limit=500) if t.run_id == run_id]
        return RunIdentity(None, summary)
    return RunIdentity(run, traces_of(traces, tenant, run))
