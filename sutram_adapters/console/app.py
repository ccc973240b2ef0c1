"""``sutram serve``: the operator console, a web app over a Sutram database.

Server-rendered pages (Starlette + Jinja2, a little JavaScript, no CDN: it works offline)
over the same database the apps write to, SQLite or PostgreSQL:

- ``/``: runs (traces) with filters (tenant, status, graph, time range) and totals;
- ``/runs/{id}``: a run's trace as a tree and as a waterfall, tokens and cost per span,
  errors, and, for a durable run, its ledger entry and journaled calls;
- ``/threads/{id}``: a thread's checkpoints, the state at one, the diff between two, and
  the diff against the thread a fork came from (``/diff``);
- ``/paused``: paused durable runs with their reason, and a resume action;
- ``/memory``: search and browse a tenant's memories, with links to the runs that wrote them;
- ``/audit``: the audit chain of each tenant.

Access: with no token the console serves loopback only. ``token=`` gives full access to
whoever presents it; ``tenant_tokens={"acme": "..."}`` give access to one tenant, and such
a token never shows another tenant's data. A token is presented once as ``?token=...``
(kept in an HttpOnly cookie) or on every request as ``Authorization: Bearer ...``.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sutram_core.backends.sql.checkpoints import SqlCheckpointStore
from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.journal import SqlCallJournal
from sutram_core.backends.sql.runs import SqlRunLedger
from sutram_core.backends.sql.traces import SqlTraceStore
from sutram_core.errors import ConfigurationError, ConsoleError, SutramError
from sutram_core.runs import RunStatus
from sutram_core.tenancy import DEFAULT_TENANT, validate_tenant
from sutram_core.traces.store import StoredSpan, span_tree

__all__ = ["ConsoleAccess", "create_app"]

HERE = Path(__file__).resolve().parent
PAGE = 50


@dataclass(frozen=True)
class ConsoleAccess:
    """Who may see what: ``admin_token`` sees every tenant, each of ``tenant_tokens`` one."""

    admin_token: str | None = None
    tenant_tokens: tuple[tuple[str, str], ...] = ()

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
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
        self.env.filters.update(when=_ns_to_text, ms=_ms, short=_short)

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
        presented = request.query_params.get("token") or request.cookies.get("sutram_token")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            presented = header[7:].strip()
        return self.access.tenants_for(presented)

    def tenant(self, request: Request) -> tuple[str, list[str]]:
        """The tenant this request asks for (and may see), and the tenants it may choose."""
        allowed = self.allowed(request)
        known = sorted(set(self.traces.audit_tenants()) | {DEFAULT_TENANT} | set(self._ledger_tenants()))
        choices = [t for t in known if allowed is None or t in allowed] or sorted(allowed or [DEFAULT_TENANT])
        asked = request.query_params.get("tenant") or (choices[0] if allowed is not None else DEFAULT_TENANT)
        asked = validate_tenant(asked)
        if allowed is not None and asked not in allowed:
            raise PermissionError(f"this token does not give access to tenant {asked!r}")
        if asked not in choices:
            choices.append(asked)
        return asked, choices

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
        return HTMLResponse(template.render(request=request, query=request.query_params, **context),
                            status_code=status_code)


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
               runner_factory: Callable[[str], Any] | None = None) -> Starlette:
    """The console app over the database ``url`` names (see the module docstring).
    ``runner_factory(tenant)`` builds a :class:`DurableRunner` for the resume action (the
    console cannot resume a run without the graph; ``sutram serve --graph`` passes one)."""
    access = ConsoleAccess(token, tuple(sorted((validate_tenant(t), k) for t, k in (tenant_tokens or {}).items())))
    console = Console(url, access, runner_factory)
    pages = _Pages(console)
    routes = [
        Route("/", pages.runs),
        Route("/runs/{run_id}", pages.run),
        Route("/runs/{run_id}/resume", pages.resume, methods=["POST"]),
        Route("/threads/{thread_id}", pages.thread),
        Route("/diff", pages.diff),
        Route("/paused", pages.paused),
        Route("/memory", pages.memory),
        Route("/audit", pages.audit),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        console.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = console
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
        tenant, tenants = self.c.tenant(request)
        q = request.query_params
        filters: dict[str, Any] = {"status": q.get("status") or None, "name": q.get("graph") or None,
                   "since_ns": _parse_time(q.get("since")), "until_ns": _parse_time(q.get("until"))}
        before = int(q["before"]) if q.get("before", "").isdigit() else None
        runs = self.c.traces.runs(tenant, limit=PAGE, before_ns=before, **filters)
        totals = self.c.traces.run_summary(tenant, **filters)
        names = self.c.traces.run_names(tenant)
        more = runs[-1].start_ns if len(runs) == PAGE else None
        return self.c.render("runs.html", request, tenant=tenant, tenants=tenants, runs=runs, totals=totals,
                             names=names, more=more)

    async def run(self, request: Request) -> Response:
        return await self._guard(request, self._run)

    def _run(self, request: Request) -> Response:
        tenant, tenants = self.c.tenant(request)
        run_id = request.path_params["run_id"]
        spans = self.c.traces.run_spans(tenant, run_id)
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
        # every traced execution on the run's thread (a resumed run has one per attempt)
        thread = spans[0].thread_id if spans else ledger.thread_id if ledger else None
        executions = self.c.traces.runs(tenant, thread_id=thread, limit=100) if thread else []
        if not spans and ledger is None:
            raise ConsoleError(f"no run {run_id!r} in tenant {tenant!r}: pick one from the runs list")
        calls = []
        if ledger is not None:
            calls = [(k, e) for k, e in self.c.journal.entries(tenant, ledger.thread_id) if e.run_id == ledger.run_id]
        rows = _tree_rows(spans)
        start = min((s.start_ns for s in spans), default=0)
        end = max((s.end_ns or s.start_ns for s in spans), default=start)
        total = {"input": sum(s.input_tokens or 0 for s in spans), "output": sum(s.output_tokens or 0 for s in spans),
                 "cost": sum(s.cost_usd or 0.0 for s in spans), "errors": sum(s.status == "error" for s in spans)}
        return self.c.render("run.html", request, tenant=tenant, tenants=tenants, run_id=run_id, rows=rows,
                             start=start, span=max(end - start, 1), total=total, ledger=ledger, calls=calls,
                             executions=executions, thread_id=thread)

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

            limits: dict[str, Any] = {k: float(str(form[k])) for k in ("max_tokens", "max_cost_usd", "max_steps")
                      if str(form.get(k) or "").strip()}
            budget = Budget(**{k: int(v) if k != "max_cost_usd" else v for k, v in limits.items()}) if limits else None
            try:
                runner.resume(run_id, budget=budget)
            except SutramError:
                raise
            except Exception:  # the run's own failure (or a new pause): the ledger has it
                pass
            return RedirectResponse(f"/runs/{run_id}?tenant={tenant}", status_code=303)

        return await self._guard(request, act)

    # -- threads -----------------------------------------------------------------------

    async def thread(self, request: Request) -> Response:
        return await self._guard(request, self._thread)

    def _thread(self, request: Request) -> Response:
        from sutram_adapters.langgraph.diff import plain
        from sutram_adapters.langgraph.durable import FORK_KEY

        tenant, tenants = self.c.tenant(request)
        thread_id = request.path_params["thread_id"]
        saver = self.c.saver(tenant)
        history = list(saver.list({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}, limit=500))
        if not history:
            raise ConsoleError(f"thread {thread_id!r} has no checkpoints in tenant {tenant!r}")
        by_id = {h.config["configurable"]["checkpoint_id"]: h for h in history}
        q = request.query_params
        at = by_id.get(q.get("at", "")) or history[0]
        def values(saved: Any) -> dict[str, Any]:
            # the graph's own channels; LangGraph's bookkeeping ones (__start__, branch:...) left out
            return {k: v for k, v in plain(saved.checkpoint["channel_values"]).items()
                    if not k.startswith(("__", "branch:"))}

        state = values(at)
        changes = None
        if q.get("a") in by_id and q.get("b") in by_id:
            va, vb = values(by_id[q["a"]]), values(by_id[q["b"]])
            changes = [(k, va.get(k), vb.get(k)) for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
        origin = next((h.metadata.get(FORK_KEY) for h in history if isinstance(h.metadata.get(FORK_KEY), dict)), None)
        runs = self.c.ledger.runs(tenant, thread_id=thread_id, limit=50)
        return self.c.render("thread.html", request, tenant=tenant, tenants=tenants, thread_id=thread_id,
                             history=history, at=at, state=state, changes=changes, origin=origin, runs=runs)

    async def diff(self, request: Request) -> Response:
        return await self._guard(request, self._diff)

    def _diff(self, request: Request) -> Response:
        from sutram_adapters.langgraph.diff import diff_threads

        tenant, tenants = self.c.tenant(request)
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        found = diff_threads(self.c.url, tenant, a, b)
        return self.c.render("diff.html", request, tenant=tenant, tenants=tenants, diff=found)

    # -- paused runs, memory, audit ----------------------------------------------------

    async def paused(self, request: Request) -> Response:
        return await self._guard(request, self._paused)

    def _paused(self, request: Request) -> Response:
        tenant, tenants = self.c.tenant(request)
        runs = self.c.ledger.runs(tenant, status=RunStatus.PAUSED, limit=200)
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
        store = self.c.memory()
        hits = store.search(query, namespace=namespace, kind=kind, limit=50, tenant=tenant)
        namespaces = store.list_namespaces(max_depth=2, limit=50, tenant=tenant)
        return self.c.render("memory.html", request, tenant=tenant, tenants=tenants, hits=hits,
                             namespaces=["/".join(n) for n in namespaces])

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
