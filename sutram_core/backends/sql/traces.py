"""The SQL implementation of the trace store (SQLite and PostgreSQL).

Spans and their audit entries are written in one transaction per batch. Appends to a
tenant's audit chain are serialized: SQLite's write lock does it, on PostgreSQL a
transaction-scoped advisory lock per tenant, so several processes can trace into one
database without forking the chain.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    bindparam,
    case,
    cast,
    distinct,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.schema import audit_log, checkpoint_writes, checkpoints, runs, spans
from sutram_core.errors import ConfigurationError
from sutram_core.traces.audit import (
    GENESIS,
    AuditEntry,
    AuditReport,
    chain_hash,
    encode_records,
    load_audit_key,
    row_digest,
    verify_chain,
)
from sutram_core.traces.spans import SpanKind, SpanStatus
from sutram_core.traces.stats import Stats, bucket_width, build_stats
from sutram_core.traces.store import (
    RUN_SORTS,
    SPAN_COLUMNS,
    RunSummary,
    StoredSpan,
    Totals,
    one_line,
    preview,
)

__all__ = ["SqlTraceStore"]

_sp = spans.c
# a group's cost: the sum of its spans' costs, or NULL (unknown) when a model call in it
# has no known price; never a sum that silently counts an unpriced call as free
_KNOWN_COST = case((func.sum(case((and_(_sp.kind == SpanKind.LLM, _sp.cost_usd.is_(None)), 1), else_=0)) > 0,
                    None), else_=func.coalesce(func.sum(_sp.cost_usd), 0.0))
_au = audit_log.c
_rn = runs.c
_SPAN_COLS = tuple(_sp[c] for c in SPAN_COLUMNS)
_GROUPS = ("run", "thread", "tenant", "model")
_MODEL_CALL = _sp.kind == literal_column("'llm'")  # matches ix_sutram_spans_model_calls' predicate
_PREVIEW = 400  # characters of a root's input and output read for the runs list's preview


@dataclass(frozen=True)
class _RunFilter:
    """Which runs a query selects (every field None: all of the tenant's)."""

    thread_id: str | None = None
    status: str | None = None
    name: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    text: str | None = None
    model: str | None = None

    @property
    def empty(self) -> bool:
        return all(v is None or v == "" for v in self.__dict__.values())


class _DurableRunId(FunctionElement[str]):
    """A root span's ``sutram.run_id`` attribute: the run ledger's id of the durable run it
    executes (the attributes are JSON text; each dialect reads a key its own way)."""

    type = String()
    inherit_cache = True


@compiles(_DurableRunId, "sqlite")
def _durable_run_id_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return "json_extract(sutram_spans.attributes, '$.\"sutram.run_id\"')"


@compiles(_DurableRunId, "postgresql")
def _durable_run_id_pg(element: Any, compiler: Any, **kw: Any) -> str:
    return "(CAST(sutram_spans.attributes AS jsonb) ->> 'sutram.run_id')"


# a root joined with the ledger row of the durable run it executes (none for other runs)
_WITH_LEDGER = spans.outerjoin(runs, and_(_rn.tenant_id == _sp.tenant_id, _rn.thread_id == _sp.thread_id,
                                          _rn.run_id == _DurableRunId()))
# ledger states that say more than the trace's own status (a paused run's trace ended "ok")
_LEDGER_STATES = ("paused", "failed", "cancelled")


class SqlTraceStore:
    """Spans, run queries and the audit chain in a SQL database.

    >>> store = SqlTraceStore(Database("sqlite:///.sutram/sutram.db"))   # doctest: +SKIP
    >>> store.runs("acme", limit=10)                                      # doctest: +SKIP
    """

    def __init__(self, db: Database, *, audit_key: bytes | None = None) -> None:
        self.db = db
        # the audit chain's HMAC key; it never lives in the database (see traces/audit.py)
        self._audit_key = audit_key if audit_key is not None else load_audit_key()
        insert = postgresql.insert if db.backend == "postgresql" else sqlite.insert
        stmt = insert(spans)
        self._upsert = db.prepare(stmt.on_conflict_do_update(
            index_elements=[_sp.tenant_id, _sp.run_id, _sp.span_id],
            set_={c: stmt.excluded[c] for c in SPAN_COLUMNS if c not in ("tenant_id", "run_id", "span_id")},
        ))
        self._insert_audit = db.prepare(audit_log.insert())
        self._last_entry = db.prepare(
            select(_au.seq, _au.hash).where(_au.tenant_id == _bind("tenant"))
            .order_by(_au.seq.desc()).limit(1)
        )
        self._run_spans = db.prepare(
            select(*_SPAN_COLS).where(_sp.tenant_id == _bind("tenant"), _sp.run_id == _bind("run_id"))
            .order_by(_sp.start_ns, _sp.span_id)
        )
        # the stats page's two reads, raw tuples off the cursor (100,000 rows each at 100,000
        # runs: SQLAlchemy's Row objects cost as much as the query)
        since, until = bindparam("since", type_=BigInteger), bindparam("until", type_=BigInteger)
        bucket = cast((_sp.start_ns - since) / bindparam("width", type_=BigInteger), BigInteger)
        self._stats_roots = db.prepare(
            select(_sp.run_id, _sp.name, bucket, _sp.end_ns - _sp.start_ns, _sp.status == "error")
            .where(_sp.tenant_id == _bind("tenant"), _sp.parent_id.is_(None), _sp.start_ns >= since,
                   _sp.start_ns < until))
        self._stats_calls = db.prepare(
            select(_sp.run_id, func.coalesce(_sp.response_model, _sp.request_model, "unknown"), bucket,
                   _sp.end_ns - _sp.start_ns, _sp.status == "error", func.coalesce(_sp.input_tokens, 0),
                   func.coalesce(_sp.output_tokens, 0), _sp.cost_usd)
            # the literal lets SQLite use the partial index of model calls
            .where(_sp.tenant_id == _bind("tenant"), _MODEL_CALL, _sp.start_ns >= since, _sp.start_ns < until))
        w, c = checkpoint_writes.c, checkpoints.c
        self._links = db.prepare(
            select(_sp.span_id, c.checkpoint_id).distinct()
            .select_from(
                spans.join(checkpoint_writes, and_(
                    w.tenant_id == _sp.tenant_id, w.thread_id == _sp.thread_id,
                    w.checkpoint_ns == _sp.checkpoint_ns, w.task_id == _sp.task_id,
                )).join(checkpoints, and_(
                    c.tenant_id == _sp.tenant_id, c.thread_id == _sp.thread_id,
                    c.checkpoint_ns == _sp.checkpoint_ns, c.parent_checkpoint_id == w.checkpoint_id,
                ))
            )
            .where(_sp.tenant_id == _bind("tenant"), _sp.run_id == _bind("run_id"), _sp.kind == SpanKind.NODE)
        )

    # -- writes ----------------------------------------------------------------------

    def write_spans(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert ``rows`` and append an audit entry per finished span, in one transaction."""
        if rows:
            self.db.run(self._write_plan(rows))

    def _write_plan(self, rows: Sequence[dict[str, Any]]) -> Plan[None]:
        # every stored row is logged, running roots too (a row inserted behind Sutram's back,
        # whatever its status, is then one the log does not know)
        finished: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            finished.setdefault(row["tenant_id"], []).append(row)
        if self.db.backend == "postgresql":
            for tenant in sorted(finished):  # sorted: two writers never wait on each other in a cycle
                yield Step(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"sutram-audit:{tenant}"})
        yield Step(self._upsert, list(rows))
        now = time.time_ns()
        for tenant, done in finished.items():
            last = yield Step(self._last_entry, {"tenant": tenant})
            seq, prev = (int(last[0][0]), str(last[0][1])) if last else (0, GENESIS)
            records = encode_records([(r["span_id"], row_digest([r[c] for c in SPAN_COLUMNS])) for r in done])
            yield Step(self._insert_audit, {
                "tenant_id": tenant, "seq": seq + 1, "records": records, "prev_hash": prev,
                "hash": chain_hash(prev, records, self._audit_key, tenant, seq + 1), "recorded_at_ns": now,
            })

    # -- queries ---------------------------------------------------------------------

    def runs(
        self, tenant: str, *, thread_id: str | None = None, status: str | None = None,
        limit: int = 50, before_ns: int | None = None, name: str | None = None,
        since_ns: int | None = None, until_ns: int | None = None, text: str | None = None,
        model: str | None = None, sort: str = "newest", offset: int = 0,
    ) -> list[RunSummary]:
        """Runs of a tenant (or of one thread) with their totals, in ``sort`` order
        (:data:`RUN_SORTS`; ``before_ns`` pages the newest-first list, ``offset`` the
        others); ``name`` (the root's name: the graph or chain), ``since_ns``/``until_ns``
        (start time), ``text`` (in the run's input, output or error, any case) and
        ``model`` (a model call of the run used it) filter."""
        if sort not in RUN_SORTS:
            raise ConfigurationError(f"sort runs by {sort!r}: use one of {', '.join(RUN_SORTS)}")
        where = _RunFilter(thread_id, status, name, since_ns, until_ns, text, model)
        return self.db.run(self._runs_plan(tenant, where, limit, before_ns, sort, max(0, offset)), write=False)

    def _roots(self, tenant: str, where: _RunFilter, *columns: Any) -> Any:
        thread_id, status, name, since_ns, until_ns = (where.thread_id, where.status, where.name, where.since_ns,
                                                       where.until_ns)
        # the ledger is joined only when the status filter reads it (the join decodes each
        # root's attributes: a second per 100,000 runs on PostgreSQL)
        ledger = status in _LEDGER_STATES or status == SpanStatus.OK
        q = (select(*columns).select_from(_WITH_LEDGER if ledger else spans)
             .where(_sp.tenant_id == tenant, _sp.parent_id.is_(None)))
        if thread_id is not None:
            q = q.where(_sp.thread_id == thread_id)
        if status in _LEDGER_STATES:
            q = q.where(_rn.status == status)
        elif status == SpanStatus.OK:  # ended well, and its durable run (if any) is not stuck
            q = q.where(_sp.status == status, or_(_rn.status.is_(None), _rn.status.notin_(_LEDGER_STATES)))
        elif status is not None:
            q = q.where(_sp.status == status)
        if name is not None:
            q = q.where(_sp.name == name)
        if since_ns is not None:
            q = q.where(_sp.start_ns >= since_ns)
        if until_ns is not None:
            q = q.where(_sp.start_ns < until_ns)
        if where.text:
            pattern = "%" + where.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            q = q.where(or_(*(col.ilike(pattern, escape="\\") for col in (_sp.inputs, _sp.outputs, _sp.error_message))))
        if where.model:
            used = spans.alias("used")
            # spelled out rather than coalesce(...) = model: PostgreSQL estimates each column
            # (it guessed 0.5% for the expression, and nested-looped over every run: 1.9 s -> 0.6 s)
            model_used = and_(used.c.tenant_id == tenant, used.c.kind == literal_column("'llm'"),
                              or_(used.c.response_model == where.model,
                                  and_(used.c.response_model.is_(None), used.c.request_model == where.model)))
            # measured at 100,000 runs (bench/console.py): PostgreSQL hashes the IN (0.9 s, against
            # 2.1 s for a correlated EXISTS); SQLite's EXISTS probes the key (0.9 s, against 1.5 s)
            q = q.where(_sp.run_id.in_(select(used.c.run_id).where(model_used)) if self.db.backend == "postgresql"
                        else select(used.c.span_id).where(model_used, used.c.run_id == _sp.run_id).exists())
        return q

    def run_summary(
        self, tenant: str, *, thread_id: str | None = None, status: str | None = None, name: str | None = None,
        since_ns: int | None = None, until_ns: int | None = None, text: str | None = None, model: str | None = None,
    ) -> Totals:
        """Totals over every run the filters select (not only one page of them)."""
        where = _RunFilter(thread_id, status, name, since_ns, until_ns, text, model)

        def plan() -> Plan[Totals]:
            roots = self._roots(tenant, where, _sp.run_id)
            rows = yield Step(
                select(
                    # runs are counted by their roots in the same pass (a DISTINCT over the
                    # run ids cost a third of the query at 100,000 runs)
                    func.sum(case((_sp.parent_id.is_(None), 1), else_=0)), func.count(),
                    func.sum(case((_sp.kind == SpanKind.LLM, 1), else_=0)),
                    func.coalesce(func.sum(_sp.input_tokens), 0), func.coalesce(func.sum(_sp.output_tokens), 0),
                    _KNOWN_COST,
                    func.sum(case((and_(_sp.status == SpanStatus.ERROR, _sp.parent_id.is_(None)), 1), else_=0)),
                    func.coalesce(func.sum(case((_sp.parent_id.is_(None), _sp.end_ns - _sp.start_ns), else_=0)), 0),
                ).where(*(
                    (_sp.tenant_id == tenant,) if where.empty
                    # unfiltered: every span of the tenant, no run list to match against
                    else (_sp.tenant_id == tenant, _sp.run_id.in_(roots.scalar_subquery()))
                ))
            )
            n, count, llm, inp, out, cost, errors, wall = rows[0]
            return Totals(tenant, int(n or 0), int(count or 0), int(llm or 0), int(inp or 0), int(out or 0),
                          None if cost is None and llm else float(cost or 0.0), int(errors or 0),
                          float(wall or 0) / 1e6)

        return self.db.run(plan(), write=False)

    def run_names(self, tenant: str, limit: int = 200) -> list[str]:
        """The distinct names of a tenant's runs (graphs and chains), for a filter."""
        def plan() -> Plan[list[str]]:
            rows = yield Step(select(_sp.name).distinct().where(_sp.tenant_id == tenant, _sp.parent_id.is_(None))
                              .order_by(_sp.name).limit(limit))
            return [str(r[0]) for r in rows]

        return self.db.run(plan(), write=False)

    def run_models(self, tenant: str, limit: int = 200) -> list[str]:
        """The distinct models a tenant's model calls used, for a filter."""
        def plan() -> Plan[list[str]]:
            model = func.coalesce(_sp.response_model, _sp.request_model)
            rows = yield Step(select(model).distinct().where(_sp.tenant_id == tenant, _MODEL_CALL,
                                                             model.is_not(None)).order_by(model).limit(limit))
            return [str(r[0]) for r in rows]

        return self.db.run(plan(), write=False)

    def stats(self, tenant: str, since_ns: int, until_ns: int, buckets: int = 24) -> Stats:
        """Runs, errors, tokens, cost and latency (p50/p95) of the runs started between
        ``since_ns`` and ``until_ns``: per time bucket, per model and per graph."""
        if until_ns <= since_ns or not 1 <= buckets <= 500:
            raise ConfigurationError("stats: the window must end after it starts, in 1 to 500 buckets")

        def plan() -> Plan[Stats]:
            params = {"tenant": tenant, "since": since_ns, "until": until_ns,
                      "width": bucket_width(since_ns, until_ns, buckets)}
            roots = yield Step(self._stats_roots, params)
            calls = yield Step(self._stats_calls, params)
            return build_stats(tenant, since_ns, until_ns, buckets, roots, calls)

        return self.db.run(plan(), write=False)

    def _runs_plan(self, tenant: str, where: _RunFilter, limit: int, before_ns: int | None,
                   sort: str = "newest", offset: int = 0) -> Plan[list[RunSummary]]:
        # two reads: the page's run ids in order (narrow rows, so that sorting 100,000 runs does
        # not carry their previews through the sort), then those runs' rows and totals
        q = self._roots(tenant, where, _sp.run_id)
        if before_ns is not None:
            q = q.where(_sp.start_ns < before_ns)
        if sort in ("tokens", "cost"):
            # ranked from the model calls' side (tokens and cost are theirs): each run that made
            # one, summed, largest first; runs without a model call are not in this order
            metric = (func.sum(func.coalesce(_sp.input_tokens, 0) + func.coalesce(_sp.output_tokens, 0))
                      if sort == "tokens" else func.coalesce(func.sum(_sp.cost_usd), 0.0))
            ranked = (select(_sp.run_id).where(_sp.tenant_id == tenant, _MODEL_CALL)
                      .group_by(_sp.run_id).order_by(metric.desc(), func.max(_sp.start_ns).desc()))
            if not where.empty or before_ns is not None:
                ranked = ranked.where(_sp.run_id.in_(q.scalar_subquery()))
            ids = [r[0] for r in (yield Step(ranked.limit(limit).offset(offset)))]
        else:
            duration = _sp.end_ns - _sp.start_ns
            order = {"newest": (_sp.start_ns.desc(),), "oldest": (_sp.start_ns.asc(),),
                     "slowest": (duration.is_(None), duration.desc(), _sp.start_ns.desc()),
                     "fastest": (duration.is_(None), duration.asc(), _sp.start_ns.desc())}[sort]
            ids = [r[0] for r in (yield Step(q.order_by(*order).limit(limit).offset(offset)))]
        if not ids:
            return []
        rows = yield Step(
            select(_sp.run_id, _sp.name, _sp.thread_id, _sp.status, _sp.start_ns, _sp.end_ns, _rn.run_id, _rn.status,
                   func.substr(_sp.inputs, 1, _PREVIEW), func.substr(_sp.outputs, 1, _PREVIEW), _sp.error_message)
            .select_from(_WITH_LEDGER)
            .where(_sp.tenant_id == tenant, _sp.parent_id.is_(None), _sp.run_id.in_(ids)))
        place = {run_id: i for i, run_id in enumerate(ids)}
        roots = sorted(rows, key=lambda r: place[r[0]])
        sums = yield Step(
            select(
                _sp.run_id, func.count(), func.coalesce(func.sum(_sp.input_tokens), 0),
                func.coalesce(func.sum(_sp.output_tokens), 0), _KNOWN_COST,
                func.sum(case((_sp.status == SpanStatus.ERROR, 1), else_=0)),
            ).where(_sp.tenant_id == tenant, _sp.run_id.in_(ids)).group_by(_sp.run_id)
        )
        by_run = {r[0]: r for r in sums}
        out = []
        for run_id, name, thread, st, start, end, durable_id, durable_status, inp, outp, error in roots:
            s = by_run.get(run_id, (run_id, 0, 0, 0, 0.0, 0))
            out.append(RunSummary(tenant, run_id, name, thread, st, start, end, int(s[1]), int(s[2]), int(s[3]),
                                  None if s[4] is None else float(s[4]), int(s[5] or 0), durable_id, durable_status,
                                  input_preview=preview(inp), output_preview=one_line(error) if error else preview(outp, output=True)))
        return out

    def run_spans(self, tenant: str, run_id: str) -> list[StoredSpan]:
        """Every span of a run in start order, with the checkpoint each step produced."""
        return self.db.run(self._run_spans_plan(tenant, run_id), write=False)

    def _run_spans_plan(self, tenant: str, run_id: str) -> Plan[list[StoredSpan]]:
        params = {"tenant": tenant, "run_id": run_id}
        rows = yield Step(self._run_spans, params)
        out = [StoredSpan.from_row(r) for r in rows]
        if any(s.kind == SpanKind.NODE for s in out):
            links = dict((yield Step(self._links, params)))
            for s in out:
                s.checkpoint_id = links.get(s.span_id)
        return out

    def totals(
        self, tenant: str, by: str, *, thread_id: str | None = None, run_id: str | None = None
    ) -> list[Totals]:
        """Totals grouped ``by`` "run", "thread", "tenant" or "model", largest cost first."""
        if by not in _GROUPS:
            raise ConfigurationError(f"totals by {by!r}: use one of {', '.join(_GROUPS)}")
        return self.db.run(self._totals_plan(tenant, by, thread_id, run_id), write=False)

    def _totals_plan(self, tenant: str, by: str, thread_id: str | None, run_id: str | None) -> Plan[list[Totals]]:
        is_llm = _sp.kind == SpanKind.LLM
        if by == "model":
            key: Any = func.coalesce(_sp.response_model, _sp.request_model, "unknown")
            latency = func.sum(case((is_llm, _sp.end_ns - _sp.start_ns), else_=0))
        else:
            key = {"run": _sp.run_id, "thread": func.coalesce(_sp.thread_id, ""), "tenant": _sp.tenant_id}[by]
            latency = func.sum(case((_sp.parent_id.is_(None), func.coalesce(_sp.end_ns - _sp.start_ns, 0)), else_=0))
        q = select(
            key, func.count(distinct(_sp.run_id)), func.count(), func.sum(case((is_llm, 1), else_=0)),
            func.coalesce(func.sum(_sp.input_tokens), 0), func.coalesce(func.sum(_sp.output_tokens), 0),
            _KNOWN_COST, func.sum(case((_sp.status == SpanStatus.ERROR, 1), else_=0)),
            latency,
        ).where(_sp.tenant_id == tenant)
        if by == "model":
            q = q.where(is_llm)
        if thread_id is not None:
            q = q.where(_sp.thread_id == thread_id)
        if run_id is not None:
            q = q.where(_sp.run_id == run_id)
        rows = yield Step(q.group_by(key))
        out = [Totals(str(r[0]), int(r[1]), int(r[2]), int(r[3] or 0), int(r[4]), int(r[5]),
                      None if r[6] is None else float(r[6]), int(r[7] or 0), float(r[8] or 0) / 1e6) for r in rows]
        return sorted(out, key=lambda t: (t.cost_usd is not None, -(t.cost_usd or 0.0), t.key))

    # -- audit -----------------------------------------------------------------------

    def verify_audit(self, tenant: str) -> AuditReport:
        """Recompute ``tenant``'s audit chain against the stored spans (with the audit key,
        when ``SUTRAM_AUDIT_KEY`` or ``SUTRAM_AUDIT_KEY_FILE`` gives one)."""
        return self.db.run(self._verify_plan(tenant), write=False)

    def _verify_plan(self, tenant: str) -> Plan[AuditReport]:
        entries = yield Step(
            select(_au.seq, _au.records, _au.prev_hash, _au.hash).where(_au.tenant_id == tenant).order_by(_au.seq)
        )
        rows = yield Step(select(*_SPAN_COLS).where(_sp.tenant_id == tenant))
        by_id = {r[1]: tuple(r) for r in rows}
        return verify_chain(tenant, (AuditEntry(int(e[0]), *e[1:]) for e in entries), by_id, self._audit_key)

    def audit_hash(self, tenant: str, seq: int) -> str | None:
        """The stored hash of ``tenant``'s audit entry ``seq`` (None when there is none)."""
        rows = self.db.run(_one(select(_au.hash).where(_au.tenant_id == tenant, _au.seq == seq)), write=False)
        return str(rows[0][0]) if rows else None

    def audit_tenants(self) -> list[str]:
        """Every tenant with an audit log or with spans (a tenant whose log was deleted
        but whose spans remain is verified too, and fails), for an operator."""
        logged = self.db.run(_one(select(_au.tenant_id).distinct()), write=False)
        traced = self.db.run(_one(select(_sp.tenant_id).distinct()), write=False)
        return sorted({r[0] for r in logged} | {r[0] for r in traced})

    # -- async twins -----------------------------------------------------------------

    async def arun_spans(self, tenant: str, run_id: str) -> list[StoredSpan]:
        """Async twin of :meth:`run_spans`."""
        return await self.db.offload(self.run_spans, tenant, run_id)

    async def aruns(self, tenant: str, **kwargs: Any) -> list[RunSummary]:
        """Async twin of :meth:`runs`."""
        return await self.db.offload(self.runs, tenant, **kwargs)


def _bind(name: str) -> Any:
    return bindparam(name)


def _one(statement: Any) -> Plan[Any]:
    rows = yield Step(statement)
    return rows
