"""``sutram serve``: the operator console, a web app over a Sutram database.

Server-rendered pages (Starlette + Jinja2, a little JavaScript, no CDN: it works offline)
over the same database the apps write to, SQLite or PostgreSQL:

- ``/``: runs (traces) with filters (tenant, status, graph, time range) and totals;
- ``/runs/{id}``: a run's trace as a tree and as a waterfall, tokens and cost per span,
  errors, and, for a durable run, its ledger entry and journaled calls; ``?span=ID`` opens
  a span's detail panel (its chat, tool arguments and result, documents, attributes, error
  and stack);
- ``/threads/{id}``: a thread's checkpoints, the state at one, the diff between two, and
  the diff against the thread a fork came from (``/diff``);
- ``/paused``: paused durable runs with their reason, and a resume action;
- ``/memory``: search and browse a tenant's memories, with links to the runs that wrote them;
- ``/audit``: the audit chain of each tenant.

Access: with no token the console serves loopback only. ``token=`` gives full access to
whoever presents it; ``tenant_tokens={"acme": "..."}`` give access to one tenant, and such
a token never shows another tenant's data. A token is presented once as ``?token=...``
(kept in an HttpOnly cookie) or on every request as ``Authorization: Bearer ...``.
Whatever the access, every request passes :mod:`sutram_adapters.console.security` first:
unknown ``Host`` headers are refused, and a POST needs the console's own origin and the
session's CSRF token.
"""

from __future__ import annotations

import contextlib
import heapq
import hmac
import ipaddress
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sutram_adapters.console.security import ConsoleGuard, CsrfTokens, allowed_host_names
from sutram_adapters.console.span_detail import pretty, span_detail
from sutram_adapters.console.thread_history import conversation, thread_history
from sutram_adapters.run_identity import traces_of
from sutram_core.backends.sql.checkpoints import SqlCheckpointStore
from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.journal import SqlCallJournal
from sutram_core.backends.sql.runs import SqlRunLedger
from sutram_core.backends.sql.traces import SqlTraceStore
from sutram_core.errors import ConfigurationError, ConsoleError, SutramError
from sutram_core.runs import RunStatus
from sutram_core.tenancy import DEFAULT_TENANT, validate_tenant
from sutram_core.traces.store import RUN_ORDER, StoredSpan, Totals, span_tree, total_cost

__all__ = ["ConsoleAccess", "create_app"]

HERE = Path(__file__).resolve().parent
PAGE = 50
MEMORY_PAGE = 20  # memories per page of the memory search
# the stats page's windows: how many bars each has, and what one bar is
STATS_WINDOWS = {"1h": (60, "minute"), "24h": (24, "hour"), "7d": (28, "6 hours"), "30d": (30, "day")}
CHOICES_SECONDS = 30.0  # how long the runs list's graph and model choices are reused
CONVERSATION_TURNS = 50  # the newest runs of a thread its conversation view shows
ALL_TENANTS = "*"  # ?tenant=* (or no tenant) on the runs and paused pages: every tenant the caller may see


@dataclass(frozen=True)
class ConsoleAccess:
    """Who may see what: ``admin_token`` sees every tenant, each of ``tenant_tokens`` one."""

    admin_token: str | None = None
    tenant_tokens: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # an empty token would read as "a token is set" (so no loopback-only rule) while
        # matching nothing: refuse it rather than start a console nobody can open
        if self.admin_token is not None and not self.admin_token.strip():
            raise ConfigurationError("the access token is empty: pass --token SECRET with a non-empty secret, "
                                     "or leave --token out for a loopback-only console")
        empty = [tenant for tenant, token in self.tenant_tokens if not token.strip()]
        if empty:
            raise ConfigurationError(f"the access token of tenant {empty[0]!r} is empty: pass --tenant-token "
                                     f"{empty[0]}=SECRET with a non-empty secret")

    @property
    def open(self) -> bool:
        """No token is configured (then the console must listen on loopback only)."""
        return self.admin_token is None and not self.tenant_tokens

    def tenants_for(self, presented: str | None) -> frozenset[str] | None:
        """The tenants a presented token may see (None: all); raises PermissionError."""
        if self.open:
            return None
        if presented:
            if self.admin_token is not None and hmac.compare_digest(presented, self.admin_token):
                return None
            allowed = frozenset(t for t, tok in self.tenant_tokens if hmac.compare_digest(presented, tok))
            if allowed:
                return allowed
        raise PermissionError("a valid access token is required")


def presented_token(request: Request) -> str | None:
    """The access token a request presents: ``Authorization: Bearer``, else ``?token=``,
    else the ``sutram_token`` cookie."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token") or request.cookies.get("sutram_token")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ns_to_text(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


_MAX_NS = 2**63 - 1


def _parse_before(value: str | None) -> int | None:
    """The runs list's ``before`` cursor (a start time in ns, as the "Older runs" link gives it)."""
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > _MAX_NS:
        raise ConsoleError(f"before={value[:60]!r} is not a start time in nanoseconds (0 to {_MAX_NS}): "
                           "follow the \"Older runs\" link instead of editing it")
    return int(value)


def _parse_page(value: str | None) -> int:
    """The memory page's ``page`` (1, 2, ...)."""
    if not value:
        return 1
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 10_000:
        raise ConsoleError(f"page={value[:20]!r} is not a page number (1 to 10000): follow the Next link instead")
    return int(value)


def _parse_limits(form: Any) -> dict[str, int | float]:
    """A resume form's new budget: whole positive numbers for tokens and steps, a finite
    non-negative amount for dollars; raises ConsoleError naming the field."""
    limits: dict[str, int | float] = {}
    for field in ("max_tokens", "max_steps"):
        raw = str(form.get(field) or "").strip()
        if raw:
            if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= _MAX_NS:
                raise ConsoleError(f"{field} must be a whole number of at least 1, not {raw[:40]!r}")
            limits[field] = int(raw)
    raw = str(form.get("max_cost_usd") or "").strip()
    if raw:
        try:
            amount = float(raw)
        except ValueError:
            amount = math.nan
        if not math.isfinite(amount) or amount < 0:
            raise ConsoleError(f"max_cost_usd must be an amount in dollars such as 0.50, not {raw[:40]!r}")
        limits["max_cost_usd"] = amount
    return limits


def _path_part(value: Any) -> str:
    """An id as one URL path segment (a thread id may hold '/', '?', '#' or '%')."""
    return quote(str(value), safe="")


def _parse_time(value: str | None) -> int | None:
    """A form's date or date-time (UTC) as nanoseconds (clamped to what the database holds)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConsoleError(f"{value!r} is not a date or date-time: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0, min(_MAX_NS, int(moment.timestamp() * 1e9)))


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def _short_id(run_id: str) -> str:
    """The first characters of a run id that tell runs apart: a LlamaIndex run id
    (``FunctionAgent.run-<uuid>``) by its uuid, not by its common prefix."""
    head, dash, tail = run_id.partition("-")
    return tail[:8] if dash and "." in head else run_id[:8]


def _limits(values: dict[str, Any]) -> str:
    """A budget or a spend as words ("max_tokens 5 · max_cost_usd 0.5"), not a Python dict."""
    return " · ".join(f"{k} {v}" for k, v in values.items()) or "none"


def _short(value: Any, width: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


class Console:
    """The console's data access and pages (one per app)."""

    def __init__(self, url: str | None, access: ConsoleAccess, runner_factory: Callable[[str], Any] | None) -> None:
        self.url = url
        self.access = access
        self.db = Database(url)
        self.db.setup()
        self.traces = SqlTraceStore(self.db)
        self.ledger = SqlRunLedger(self.db)
        self.journal = SqlCallJournal(self.db)
        self.checkpoints = SqlCheckpointStore(self.db)
        self.runner_factory = runner_factory
        self._runners: dict[str, Any] = {}
        self._savers: dict[str, Any] = {}
        self._memory: Any = None
        self._lock = threading.Lock()
        self._filter_choices: dict[str, tuple[float, list[str], list[str]]] = {}
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
        self.env.filters.update(when=_ns_to_text, ms=_ms, short=_short, urlpath=_path_part, pretty=pretty,
                                shortid=_short_id, limits=_limits, usd=_cost)

    def choices(self, tenant: str) -> tuple[list[str], list[str]]:
        """A tenant's graph names and models, for the runs list's filters: read at most every
        CHOICES_SECONDS (each is a scan of the tenant's runs; a new name shows up that late)."""
        now = time.monotonic()
        cached = self._filter_choices.get(tenant)
        if cached is None or now - cached[0] > CHOICES_SECONDS:
            cached = (now, self.traces.run_names(tenant), self.traces.run_models(tenant))
            self._filter_choices[tenant] = cached
        return cached[1], cached[2]

    def close(self) -> None:
        for saver in self._savers.values():
            saver.close()
        for runner in self._runners.values():
            runner.close()
        if self._memory is not None:
            self._memory.close()
        self.db.close()

    # -- access ------------------------------------------------------------------------

    def allowed(self, request: Request) -> frozenset[str] | None:
        return self.access.tenants_for(presented_token(request))

    def tenants(self, request: Request) -> tuple[str | None, list[str]]:
        """For the pages that can list every tenant (runs, paused runs): the tenant asked for,
        or None for all the request may see (no ``tenant``, or ``tenant=*``), and those tenants."""
        raw = request.query_params.get("tenant")
        if raw and raw != ALL_TENANTS:
            return self.tenant(request)
        allowed = self.allowed(request)
        return None, self._choices(allowed)

    def _choices(self, allowed: frozenset[str] | None) -> list[str]:
        known = sorted(set(self.traces.audit_tenants()) | {DEFAULT_TENANT} | set(self._ledger_tenants()))
        return [t for t in known if allowed is None or t in allowed] or sorted(allowed or [DEFAULT_TENANT])

    def tenant(self, request: Request) -> tuple[str, list[str]]:
        """The tenant this request asks for (and may see), and the tenants it may choose."""
        allowed = self.allowed(request)
        choices = self._choices(allowed)
        asked = request.query_params.get("tenant")
        if not asked or asked == ALL_TENANTS:
            asked = choices[0] if allowed is not None else DEFAULT_TENANT
        asked = validate_tenant(asked)
        if allowed is not None and asked not in allowed:
            raise PermissionError(f"this token does not give access to tenant {asked!r}")
        if asked not in choices:
            choices.append(asked)
        return asked, choices

    def owns_run(self, tenant: str, run_id: str) -> bool:
        """Whether ``tenant`` has a trace or a durable run with this id."""
        if self.traces.run_spans(tenant, run_id):
            return True
        try:
            self.ledger.get(tenant, run_id)
        except SutramError:
            return False
        return True

    def _ledger_tenants(self) -> list[str]:
        def plan() -> Plan[list[str]]:
            rows = yield Step(text("SELECT DISTINCT tenant_id FROM sutram_runs"))
            return [str(r[0]) for r in rows]

        return self.db.run(plan(), write=False)

    def saver(self, tenant: str) -> Any:
        from sutram_adapters.langgraph.saver import SutramSaver

        with self._lock:
            if tenant not in self._savers:
                self._savers[tenant] = SutramSaver(self.url, tenant=tenant)
            return self._savers[tenant]

    def memory(self) -> Any:
        from sutram_core.memory import MemoryStore

        with self._lock:
            if self._memory is None:
                self._memory = MemoryStore.from_url(self.url)  # unbound: each call names its tenant
            return self._memory

    def runner(self, tenant: str) -> Any:
        if self.runner_factory is None:
            return None
        with self._lock:
            if tenant not in self._runners:
                self._runners[tenant] = self.runner_factory(tenant)
            return self._runners[tenant]

    def render(self, name: str, request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
        template = self.env.get_template(name)
        csrf_token = getattr(request.state, "csrf_token", "")
        here = quote(request.scope["path"])  # this page's path as a URL again (a thread id may hold '?' or '#')
        return HTMLResponse(template.render(request=request, query=request.query_params, csrf_token=csrf_token,
                                            here=here, **context), status_code=status_code)

    def refuse(self, request: Request, status_code: int, message: str) -> HTMLResponse:
        """The error page, for a request refused before any page ran."""
        return self.render("error.html", request, status_code, status=status_code, message=message,
                           tenant=None, tenants=[])


def _cost(value: float | None) -> str:
    """Dollars, or "unknown" for a model call without a price (never a guessed $0)."""
    return "unknown" if value is None else f"${value:.6f}"


def _sum_totals(parts: Sequence[Totals]) -> Totals:
    """The totals of several tenants as one."""
    return Totals("*", sum(p.runs for p in parts), sum(p.spans for p in parts), sum(p.llm_calls for p in parts),
                  sum(p.input_tokens for p in parts), sum(p.output_tokens for p in parts),
                  total_cost([p.cost_usd for p in parts]), sum(p.errors for p in parts),
                  sum(p.latency_ms for p in parts))


def _tree_rows(spans: Sequence[StoredSpan]) -> list[tuple[int, StoredSpan]]:
    """The spans depth first, each with its depth (for the tree and the waterfall)."""
    out: list[tuple[int, StoredSpan]] = []
    stack = [(0, root) for root in reversed(span_tree(spans))]
    while stack:
        depth, span = stack.pop()
        out.append((depth, span))
        stack.extend((depth + 1, child) for child in reversed(span.children))
    return out


def create_app(url: str | None = None, *, token: str | None = None,
               tenant_tokens: dict[str, str] | None = None,
               runner_factory: Callable[[str], Any] | None = None,
               host: str | None = None, allow_hosts: Iterable[str] = ()) -> Starlette:
    """The console app over the database ``url`` names (see the module docstring).
    ``runner_factory(tenant)`` builds a :class:`DurableRunner` for the resume action (the
    console cannot resume a run without the graph; ``sutram serve --graph`` passes one).
    The app answers the ``Host`` names localhost, 127.0.0.1 and [::1], ``host`` (the
    address it listens on, unless that is 0.0.0.0 or ::) and each of ``allow_hosts``."""
    access = ConsoleAccess(token, tuple(sorted((validate_tenant(t), k) for t, k in (tenant_tokens or {}).items())))
    hosts = allowed_host_names(host, allow_hosts)
    console = Console(url, access, runner_factory)
    pages = _Pages(console)
    routes = [
        Route("/", pages.runs),
        # ids are whole paths ("user/42"); the resume route goes first so it is not read as a run id
        Route("/runs/{run_id:path}/resume", pages.resume, methods=["POST"]),
        Route("/runs/{run_id:path}", pages.run),
        Route("/threads/{thread_id:path}", pages.thread),
        Route("/diff", pages.diff),
        Route("/stats", pages.stats),
        Route("/paused", pages.paused),
        Route("/memory", pages.memory),
        Route("/audit", pages.audit),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        console.close()

    guard = Middleware(ConsoleGuard, hosts=hosts, tokens=CsrfTokens(),
                       identity=lambda request: presented_token(request) or "", refuse=console.refuse)
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[guard])
    app.state.console = console
    app.state.allowed_hosts = hosts
    return app


class _Pages:
    def __init__(self, console: Console) -> None:
        self.c = console

    async def _guard(self, request: Request, page: Callable[[Request], Any]) -> Response:
        import asyncio

        try:
            response: Response = await asyncio.to_thread(page, request)
        except PermissionError as exc:
            return self.c.render("error.html", request, 403, status=403, message=str(exc), tenant=None, tenants=[])
        except SutramError as exc:
            return self.c.render("error.html", request, 400, status=400, message=str(exc), tenant=None, tenants=[])
        token = request.query_params.get("token")
        if token and response.status_code < 400:
            response.set_cookie("sutram_token", token, httponly=True, samesite="strict")
        return response

    # -- runs --------------------------------------------------------------------------

    async def runs(self, request: Request) -> Response:
        return await self._guard(request, self._runs)

    def _runs(self, request: Request) -> Response:
        tenant, tenants = self.c.tenants(request)
        q = request.query_params
        filters: dict[str, Any] = {"status": q.get("status") or None, "name": q.get("graph") or None,
                   "since_ns": _parse_time(q.get("since")), "until_ns": _parse_time(q.get("until")),
                   "text": (q.get("q") or "").strip()[:200] or None, "model": q.get("model") or None}
        sort = q.get("sort") or "newest"
        if sort not in RUN_ORDER:
            raise ConsoleError(f"sort {sort!r}: use one of {', '.join(RUN_ORDER)}")
        before = _parse_before(q.get("before")) if sort == "newest" else None
        offset = _parse_page(q.get("page")) * PAGE - PAGE if sort != "newest" else 0
        # every store read is scoped to one tenant: all tenants is a page from each, merged
        scope = [tenant] if tenant is not None else tenants
        ranked = heapq.nsmallest(offset + PAGE, (r for t in scope for r in self.c.traces.runs(
            t, limit=offset + PAGE, before_ns=before, sort=sort, **filters)), key=RUN_ORDER[sort])
        runs = ranked[offset:]
        totals = _sum_totals([self.c.traces.run_summary(t, **filters) for t in scope])
        names = sorted({n for t in scope for n in self.c.choices(t)[0]})
        models = sorted({m for t in scope for m in self.c.choices(t)[1]})
        full = len(runs) == PAGE
        kept = [(k, v) for k, v in q.multi_items() if k not in ("before", "page")]
        more = None if not full else "/?" + urlencode(
            kept + ([("before", str(runs[-1].start_ns))] if sort == "newest" else [("page", str(offset // PAGE + 2))]))
        by = {key: "/?" + urlencode([(k, v) for k, v in kept if k != "sort"] + [("sort", key)]) for key in RUN_ORDER}
        return self.c.render("runs.html", request, tenant=tenant, tenants=tenants, runs=runs, totals=totals,
                             names=names, models=models, more=more, sort=sort, by=by,
                             live=any(r.state == "running" for r in runs))

    async def run(self, request: Request) -> Response:
        return await self._guard(request, self._run)

    def _run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if request.query_params.get("tenant", ALL_TENANTS) == ALL_TENANTS:
            # no tenant named: run ids are unique in practice, so look in each tenant the caller may see
            _, tenants = self.c.tenants(request)
            tenant = next((t for t in tenants if self.c.owns_run(t, run_id)), tenants[0])
        else:
            tenant, tenants = self.c.tenant(request)
        # the id may be a trace's or a durable run's (the ledger's): each names the other
        spans = self.c.traces.run_spans(tenant, run_id)
        trace_id = run_id
        ledger = None
        if spans:
            root = next((s for s in spans if s.parent_id is None), spans[0])
            ledger_id = root.attributes.get("sutram.run_id")
        else:
            ledger_id = run_id
        if ledger_id:
            try:
                ledger = self.c.ledger.get(tenant, str(ledger_id))
            except SutramError:
                ledger = None
        # the traces of the durable run's executions (a resumed run has one per execution)
        executions = traces_of(self.c.traces, tenant, ledger) if ledger is not None else []
        if not spans and executions:  # a ledger id: show its newest execution's trace
            trace_id = executions[-1].run_id
            spans = self.c.traces.run_spans(tenant, trace_id)
        thread = spans[0].thread_id if spans else ledger.thread_id if ledger else None
        if not spans and ledger is None:
            raise ConsoleError(f"no run {run_id!r} in tenant {tenant!r}: pick one from the runs list")
        calls = []
        if ledger is not None:
            calls = [(k, e) for k, e in self.c.journal.entries(tenant, ledger.thread_id) if e.run_id == ledger.run_id]
        rows = _tree_rows(spans)
        selected = request.query_params.get("span")
        detail = None
        if selected:
            chosen = next((s for s in spans if s.span_id == selected), None)
            if chosen is None:
                raise ConsoleError(f"run {run_id!r} has no span {selected[:80]!r}: pick one from its trace tree")
            detail = span_detail(chosen)
        start = min((s.start_ns for s in spans), default=0)
        end = max((s.end_ns or s.start_ns for s in spans), default=start)
        total = {"input": sum(s.input_tokens or 0 for s in spans), "output": sum(s.output_tokens or 0 for s in spans),
                 "cost": total_cost([s.cost_usd for s in spans if s.kind == "llm" or s.cost_usd is not None]), "errors": sum(s.status == "error" for s in spans)}
        return self.c.render("run.html", request, tenant=tenant, tenants=tenants, run_id=trace_id, rows=rows,
                             start=start, span=max(end - start, 1), total=total, ledger=ledger, calls=calls,
                             executions=executions, thread_id=thread, detail=detail,
                             live=any(s.status == "running" for _, s in rows[:1])
                             or (ledger is not None and ledger.status == RunStatus.RUNNING))

    async def resume(self, request: Request) -> Response:
        form = await request.form()

        def act(req: Request) -> Response:
            tenant, _ = self.c.tenant(req)
            run_id = req.path_params["run_id"]
            if form.get("confirm") != "yes":
                raise ConsoleError("resuming needs confirmation: tick the box and press Resume again")
            runner = self.c.runner(tenant)
            if runner is None:
                raise ConsoleError("this console has no graph to run: start it with sutram serve --graph module:attr")
            from sutram_core.runs import Budget

            limits = _parse_limits(form)  # before anything runs: a bad value changes nothing
            budget = Budget(**limits) if limits else None  # type: ignore[arg-type]
            try:
                runner.resume(run_id, budget=budget)
            except SutramError:
                raise
            except Exception:  # the run's own failure (or a new pause): the ledger has it
                pass
            return RedirectResponse(f"/runs/{_path_part(run_id)}?{urlencode({'tenant': tenant})}", status_code=303)

        return await self._guard(request, act)

    # -- threads -----------------------------------------------------------------------

    async def thread(self, request: Request) -> Response:
        return await self._guard(request, self._thread)

    def _thread(self, request: Request) -> Response:
        from sutram_adapters.langgraph.diff import plain
        from sutram_adapters.langgraph.durable import FORK_KEY
        from sutram_adapters.langgraph.state_diff import diff_states

        tenant, tenants = self.c.tenant(request)
        thread_id = request.path_params["thread_id"]
        # the list is metadata only; the checkpoints shown (one, or the two compared) are decoded alone
        history = thread_history(self.c.db, tenant, thread_id, limit=500)
        if not history:
            raise ConsoleError(f"thread {thread_id!r} has no checkpoints in tenant {tenant!r}")
        ids = {h.checkpoint_id for h in history}
        q = request.query_params
        at = next((h for h in history if h.checkpoint_id == q.get("at")), history[0])
        saver = self.c.saver(tenant)
        decoded: dict[str, dict[str, Any]] = {}

        def values(checkpoint_id: str) -> dict[str, Any]:
            # the graph's own channels; LangGraph's bookkeeping ones (__start__, branch:...) left out
            if checkpoint_id not in decoded:
                saved = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": "",
                                                          "checkpoint_id": checkpoint_id}})
                channels = plain(saved.checkpoint["channel_values"]) if saved is not None else {}
                decoded[checkpoint_id] = {k: v for k, v in channels.items() if not k.startswith(("__", "branch:"))}
            return decoded[checkpoint_id]

        state = values(at.checkpoint_id)
        changes = None
        if q.get("a") in ids and q.get("b") in ids:
            va, vb = values(q["a"]), values(q["b"])
            changes = diff_states(va, vb)
        origin = next((h.metadata.get(FORK_KEY) for h in history if isinstance(h.metadata.get(FORK_KEY), dict)), None)
        runs = self.c.ledger.runs(tenant, thread_id=thread_id, limit=50)
        turns = conversation(self.c.traces.runs(tenant, thread_id=thread_id, limit=CONVERSATION_TURNS), history,
                             values)
        return self.c.render("thread.html", request, tenant=tenant, tenants=tenants, thread_id=thread_id,
                             history=history, at=at, state=state, changes=changes, origin=origin, runs=runs,
                             turns=turns)

    async def diff(self, request: Request) -> Response:
        return await self._guard(request, self._diff)

    def _diff(self, request: Request) -> Response:
        from sutram_adapters.langgraph.diff import diff_threads
        from sutram_adapters.langgraph.state_diff import diff_states

        tenant, tenants = self.c.tenant(request)
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        found = diff_threads(self.c.url, tenant, a, b)
        changes = diff_states({k: v[0] for k, v in found.state.items() if v[0] is not None},
                              {k: v[1] for k, v in found.state.items() if v[1] is not None})
        return self.c.render("diff.html", request, tenant=tenant, tenants=tenants, diff=found, changes=changes)

    # -- stats ---------------------------------------------------------------------------

    async def stats(self, request: Request) -> Response:
        return await self._guard(request, self._stats)

    def _stats(self, request: Request) -> Response:
        from sutram_adapters.console.charts import HEIGHT, WIDTH, charts
        from sutram_core.traces.stats import parse_span

        tenant, tenants = self.c.tenant(request)
        last = request.query_params.get("last") or "24h"
        if last not in STATS_WINDOWS:
            raise ConsoleError(f"window {last!r}: pick one of {', '.join(STATS_WINDOWS)}")
        until = time.time_ns()
        found = self.c.traces.stats(tenant, until - parse_span(last), until, buckets=STATS_WINDOWS[last][0])
        return self.c.render("stats.html", request, tenant=tenant, tenants=tenants, stats=found, charts=charts(found),
                             last=last, windows=list(STATS_WINDOWS), bucket=STATS_WINDOWS[last][1], width=WIDTH,
                             height=HEIGHT)

    # -- paused runs, memory, audit ----------------------------------------------------

    async def paused(self, request: Request) -> Response:
        return await self._guard(request, self._paused)

    def _paused(self, request: Request) -> Response:
        tenant, tenants = self.c.tenants(request)
        scope = [tenant] if tenant is not None else tenants
        runs = [r for t in scope for r in self.c.ledger.runs(t, status=RunStatus.PAUSED, limit=200)]
        return self.c.render("paused.html", request, tenant=tenant, tenants=tenants, runs=runs,
                             can_resume=self.c.runner_factory is not None)

    async def memory(self, request: Request) -> Response:
        return await self._guard(request, self._memory)

    def _memory(self, request: Request) -> Response:
        tenant, tenants = self.c.tenant(request)
        q = request.query_params
        query = (q.get("q") or "").strip() or None
        kind = q.get("kind") or None
        namespace = tuple(p for p in (q.get("namespace") or "").split("/") if p)
        page = _parse_page(q.get("page"))
        store = self.c.memory()
        # one page and one more hit, to know whether a next page exists
        hits = store.search(query, namespace=namespace, kind=kind, limit=MEMORY_PAGE + 1,
                            offset=(page - 1) * MEMORY_PAGE, tenant=tenant)
        more = len(hits) > MEMORY_PAGE
        namespaces = store.list_namespaces(max_depth=2, limit=50, tenant=tenant)
        links = {n: "/memory?" + urlencode([(k, v) for k, v in q.multi_items() if k != "page"] + [("page", str(n))])
                 for n in (page - 1, page + 1) if n >= 1}
        return self.c.render("memory.html", request, tenant=tenant, tenants=tenants, hits=hits[:MEMORY_PAGE],
                             namespaces=["/".join(n) for n in namespaces], page=page, first=(page - 1) * MEMORY_PAGE,
                             previous=links.get(page - 1), next=links.get(page + 1) if more else None)

    async def audit(self, request: Request) -> Response:
        return await self._guard(request, self._audit)

    def _audit(self, request: Request) -> Response:
        tenant, tenants = self.c.tenant(request)
        allowed = self.c.allowed(request)
        reports = [(t, self.c.traces.verify_audit(t)) for t in self.c.traces.audit_tenants()
                   if allowed is None or t in allowed]
        return self.c.render("audit.html", request, tenant=tenant, tenants=tenants, reports=reports)


def check_bind(host: str, access: ConsoleAccess) -> None:
    """Refuse to listen beyond loopback without an access token."""
    if not is_loopback(host) and access.open:
        raise ConfigurationError(
            f"the console would serve {host} without an access token: pass --token (or --tenant-token "
            "TENANT=TOKEN), or bind to 127.0.0.1"
        )
