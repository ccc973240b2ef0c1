"""The SQL run ledger (SQLite and PostgreSQL): runs, leases and fences.

Every state change is one conditional UPDATE: a claim succeeds only while the run is
claimable (pending, or running with an expired lease, or paused when resuming), and raises
the fence; a heartbeat, a spend, a pause or a finish succeeds only with the current fence.
On PostgreSQL, claiming expired runs in bulk uses ``FOR UPDATE SKIP LOCKED`` so several
workers split them without waiting on each other; on SQLite the database's single writer
serializes the claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.errors import InvalidRunError, LeaseLostError, RunNotFoundError
from sutram_core.memory.records import from_micros, now_micros
from sutram_core.runs.records import Budget, RunRecord, RunStatus, Spend
from sutram_core.tenancy import validate_tenant

__all__ = ["SqlRunLedger"]

_COLS = ("run_id", "tenant_id", "thread_id", "status", "graph_name", "graph_version", "executor_id", "fence",
         "lease_expires_at", "budget", "spend", "pause_reason", "error", "created_at", "updated_at",
         "finished_at", "attempts")
_SELECT = ", ".join(_COLS)


def _record(row: Sequence[Any]) -> RunRecord:
    (run_id, tenant, thread, status, name, version, executor, fence, lease, budget, spend, reason, error, created,
     updated, finished, attempts) = row
    return RunRecord(
        run_id=run_id, tenant_id=tenant, thread_id=thread, status=RunStatus(status), graph_name=name,
        graph_version=version, executor_id=executor, fence=int(fence), lease_expires_at=from_micros(lease),
        budget=Budget.from_dict(orjson.loads(budget)), spend=Spend.from_dict(orjson.loads(spend)),
        pause_reason=reason, error=error, created_at=from_micros(created), updated_at=from_micros(updated),
        finished_at=from_micros(finished), attempts=int(attempts),
    )


class SqlRunLedger:
    """Runs in the Sutram SQL database.

    >>> ledger = SqlRunLedger(Database("sqlite:///.sutram/sutram.db"))          # doctest: +SKIP
    >>> ledger.create("acme", "run-1", thread_id="t1", graph_name="agent")       # doctest: +SKIP
    >>> run = ledger.claim("acme", "run-1", executor="worker-a", lease_seconds=30)  # doctest: +SKIP
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- creating and reading ---------------------------------------------------------------

    def create(self, tenant: str, run_id: str, *, thread_id: str, graph_name: str = "", graph_version: str = "",
               budget: Budget | None = None, executor: str | None = None,
               lease_seconds: float | None = None, input: tuple[str, bytes] | None = None) -> RunRecord:
        """Record a new run: pending, or, given ``executor`` and ``lease_seconds``, already
        claimed by that executor (one statement instead of create + claim). ``input``: what
        the run starts from, serialized (type, bytes), kept for :meth:`input`.
        :class:`InvalidRunError` if the id is taken."""
        validate_tenant(tenant)
        if not isinstance(run_id, str) or not run_id or not isinstance(thread_id, str) or not thread_id:
            raise InvalidRunError(f"a run needs a non-empty run_id and thread_id, not {run_id!r} / {thread_id!r}")
        now = now_micros()
        claimed = executor is not None and lease_seconds is not None
        lease = now + int(float(lease_seconds or 0) * 1e6) if claimed else None
        record = RunRecord(run_id=run_id, tenant_id=tenant, thread_id=thread_id,
                           status=RunStatus.RUNNING if claimed else RunStatus.PENDING, graph_name=graph_name,
                           graph_version=graph_version, executor_id=executor if claimed else None,
                           fence=1 if claimed else 0, lease_expires_at=from_micros(lease), budget=budget or Budget(),
                           spend=Spend(), created_at=from_micros(now), updated_at=from_micros(now),
                           attempts=1 if claimed else 0)

        def plan() -> Plan[RunRecord]:
            added = yield Step(text(
                "INSERT INTO sutram_runs (tenant_id, run_id, thread_id, graph_name, graph_version, status, "
                "executor_id, fence, lease_expires_at, budget, spend, attempts, created_at, updated_at) VALUES "
                "(:t, :r, :th, :gn, :gv, :st, :e, :f, :exp, :b, :s, :a, :now, :now) ON CONFLICT DO NOTHING"
            ), {"t": tenant, "r": run_id, "th": thread_id, "gn": graph_name, "gv": graph_version,
                "st": record.status.value, "e": record.executor_id, "f": record.fence, "exp": lease,
                "b": orjson.dumps(record.budget.as_dict()).decode(), "s": orjson.dumps(Spend().as_dict()).decode(),
                "a": record.attempts, "now": now})
            if not added:
                raise InvalidRunError(f"run {run_id!r} already exists in tenant {tenant!r}; use a new run id")
            if input is not None:
                yield Step(text("INSERT INTO sutram_run_inputs (tenant_id, run_id, type, data) VALUES "
                                "(:t, :r, :ty, :d)"), {"t": tenant, "r": run_id, "ty": input[0], "d": input[1]})
            return record

        return self.db.run(plan())

    def input(self, tenant: str, run_id: str) -> tuple[str, bytes] | None:
        """The serialized input the run was created with (None if it had none)."""
        def plan() -> Plan[tuple[str, bytes] | None]:
            rows = yield Step(text("SELECT type, data FROM sutram_run_inputs WHERE tenant_id = :t AND run_id = :r"),
                              {"t": tenant, "r": run_id})
            return (str(rows[0][0]), bytes(rows[0][1])) if rows else None

        return self.db.run(plan(), write=False)

    def _get(self, tenant: str, run_id: str) -> Plan[RunRecord]:
        rows = yield Step(text(f"SELECT {_SELECT} FROM sutram_runs WHERE tenant_id = :t AND run_id = :r"),
                          {"t": tenant, "r": run_id})
        if not rows:
            raise RunNotFoundError(f"no run {run_id!r} in tenant {tenant!r}")
        return _record(rows[0])

    def get(self, tenant: str, run_id: str) -> RunRecord:
        """The run, or :class:`RunNotFoundError`."""
        return self.db.run(self._get(tenant, run_id), write=False)

    def runs(self, tenant: str, *, status: RunStatus | str | None = None, thread_id: str | None = None,
             limit: int = 100) -> list[RunRecord]:
        """A tenant's runs, newest first."""
        where = ["tenant_id = :t"]
        params: dict[str, Any] = {"t": tenant, "n": limit}
        if status is not None:
            where.append("status = :st")
            params["st"] = RunStatus(status).value
        if thread_id is not None:
            where.append("thread_id = :th")
            params["th"] = thread_id

        def plan() -> Plan[list[RunRecord]]:
            rows = yield Step(text(f"SELECT {_SELECT} FROM sutram_runs WHERE {' AND '.join(where)} "
                                   "ORDER BY created_at DESC, run_id LIMIT :n"), params)
            return [_record(r) for r in rows]

        return self.db.run(plan(), write=False)

    # -- ownership --------------------------------------------------------------------------

    def claim(self, tenant: str, run_id: str, *, executor: str, lease_seconds: float,
              resume: bool = False, budget: Budget | None = None) -> RunRecord | None:
        """Take the run for ``executor``: possible when it is pending, or running with an
        expired lease, or (with ``resume=True``) paused. Returns the run with its new fence,
        or None when another executor holds a live lease or the run has finished. A
        ``budget`` replaces the run's in the same statement: a refused claim changes nothing."""
        now = now_micros()
        states = "('pending', 'paused')" if resume else "('pending')"
        new_budget = None if budget is None else orjson.dumps(budget.as_dict()).decode()

        def plan() -> Plan[RunRecord | None]:
            n = yield Step(text(
                "UPDATE sutram_runs SET status = 'running', executor_id = :e, fence = fence + 1, "
                "lease_expires_at = :exp, attempts = attempts + 1, pause_reason = NULL, updated_at = :now, "
                "budget = COALESCE(:b, budget) "
                f"WHERE tenant_id = :t AND run_id = :r AND (status IN {states} "
                "OR (status = 'running' AND lease_expires_at < :now))"
            ), {"e": executor, "exp": now + int(lease_seconds * 1e6), "now": now, "t": tenant, "r": run_id,
                "b": new_budget})
            if not n:
                yield from self._get(tenant, run_id)  # RunNotFoundError for an unknown run
                return None
            return (yield from self._get(tenant, run_id))

        return self.db.run(plan())

    def claim_expired(self, *, executor: str, lease_seconds: float, limit: int = 10,
                      tenant: str | None = None, graph_name: str | None = None,
                      graph_version: str | None = None) -> list[RunRecord]:
        """Claim up to ``limit`` running runs whose lease has expired (their worker died),
        oldest lease first; each is claimed by exactly one caller. ``graph_name`` (and
        ``graph_version``): only the runs of that graph or workflow (a runner recovers its own
        runs, not another's)."""
        now = now_micros()
        lock = " FOR UPDATE SKIP LOCKED" if self.db.backend == "postgresql" else ""
        scope = "AND tenant_id = :t " if tenant is not None else ""
        if graph_name is not None:
            scope += "AND graph_name = :g "
        if graph_version is not None:
            scope += "AND graph_version = :gv "

        def plan() -> Plan[list[RunRecord]]:
            rows = yield Step(text(
                "SELECT tenant_id, run_id FROM sutram_runs WHERE status = 'running' AND lease_expires_at < :now "
                f"{scope}ORDER BY lease_expires_at LIMIT :n{lock}"
            ), {"now": now, "n": limit, "t": tenant, "g": graph_name, "gv": graph_version})
            claimed = []
            for t, r in rows:
                n = yield Step(text(
                    "UPDATE sutram_runs SET executor_id = :e, fence = fence + 1, lease_expires_at = :exp, "
                    "attempts = attempts + 1, updated_at = :now WHERE tenant_id = :t AND run_id = :r "
                    "AND status = 'running' AND lease_expires_at < :now"
                ), {"e": executor, "exp": now + int(lease_seconds * 1e6), "now": now, "t": t, "r": r})
                if n:
                    claimed.append((yield from self._get(t, r)))
            return claimed

        return self.db.run(plan())

    def _fenced(self, tenant: str, run: RunRecord | str, fence: int | None, sets: str,
                params: dict[str, Any], what: str) -> None:
        run_id = run.run_id if isinstance(run, RunRecord) else run
        fence = run.fence if isinstance(run, RunRecord) and fence is None else fence

        def plan() -> Plan[None]:
            n = yield Step(text(
                f"UPDATE sutram_runs SET {sets}, updated_at = :now WHERE tenant_id = :t AND run_id = :r "
                "AND fence = :f AND status = 'running'"
            ), {**params, "now": now_micros(), "t": tenant, "r": run_id, "f": fence})
            if not n:
                current = yield from self._get(tenant, run_id)
                raise LeaseLostError(
                    f"cannot {what} run {run_id!r}: it is {current.status.value} with fence {current.fence} "
                    f"(owner {current.executor_id}), this worker holds fence {fence}; stop working on it"
                )

        self.db.run(plan())

    def heartbeat(self, tenant: str, run: RunRecord | str, *, lease_seconds: float, fence: int | None = None) -> None:
        """Renew the lease; :class:`LeaseLostError` if another executor took the run."""
        self._fenced(tenant, run, fence, "lease_expires_at = :exp",
                     {"exp": now_micros() + int(lease_seconds * 1e6)}, "renew the lease of")

    def add_spend(self, tenant: str, run: RunRecord | str, spend: Spend, *, fence: int | None = None) -> Spend:
        """Add to what the run has spent (fenced, in one transaction); return the new total."""
        run_id = run.run_id if isinstance(run, RunRecord) else run
        fence = run.fence if isinstance(run, RunRecord) and fence is None else fence
        lock = " FOR UPDATE" if self.db.backend == "postgresql" else ""

        def plan() -> Plan[Spend]:
            rows = yield Step(text(
                f"SELECT spend, fence, status FROM sutram_runs WHERE tenant_id = :t AND run_id = :r{lock}"
            ), {"t": tenant, "r": run_id})
            if not rows:
                raise RunNotFoundError(f"no run {run_id!r} in tenant {tenant!r}")
            if int(rows[0][1]) != fence or rows[0][2] != "running":
                raise LeaseLostError(
                    f"cannot record spend on run {run_id!r}: it is {rows[0][2]} with fence {rows[0][1]}, this "
                    f"worker holds fence {fence}; stop working on it"
                )
            total = Spend.from_dict(orjson.loads(rows[0][0])).plus(spend)
            yield Step(text("UPDATE sutram_runs SET spend = :s, updated_at = :now WHERE tenant_id = :t "
                            "AND run_id = :r"),
                       {"s": orjson.dumps(total.as_dict()).decode(), "now": now_micros(), "t": tenant, "r": run_id})
            return total

        return self.db.run(plan())

    def set_budget(self, tenant: str, run_id: str, budget: Budget) -> None:
        """Replace the budget of a run that has not finished (for example before resuming it)."""
        def plan() -> Plan[None]:
            current = yield from self._get(tenant, run_id)
            if current.status.finished:
                raise InvalidRunError(f"run {run_id!r} is {current.status.value}; its budget can no longer change")
            yield Step(text("UPDATE sutram_runs SET budget = :b, updated_at = :now WHERE tenant_id = :t "
                            "AND run_id = :r"),
                       {"b": orjson.dumps(budget.as_dict()).decode(), "now": now_micros(), "t": tenant, "r": run_id})

        self.db.run(plan())

    def pause(self, tenant: str, run: RunRecord | str, reason: str, *, fence: int | None = None) -> None:
        """Pause the run with a reason (fenced); resume it with ``claim(..., resume=True)``."""
        self._fenced(tenant, run, fence, "status = 'paused', pause_reason = :why, lease_expires_at = NULL, "
                     "executor_id = NULL", {"why": reason}, "pause")

    def finish(self, tenant: str, run: RunRecord | str, status: RunStatus | str, *, error: str | None = None,
               fence: int | None = None) -> None:
        """End the run as completed, failed or cancelled (fenced)."""
        final = RunStatus(status)
        if not final.finished:
            raise InvalidRunError(f"finish takes completed, failed or cancelled, not {final.value!r}")
        self._fenced(tenant, run, fence, "status = :st, error = :err, lease_expires_at = NULL, finished_at = :at",
                     {"st": final.value, "err": error, "at": now_micros()}, "finish")
