"""The ``sutram`` command.

    sutram demo [--url URL]                       SIGKILL a durable agent mid-node, recover it, budget pause, trace
    sutram --version
    sutram history THREAD [--tenant T] [--json]   a thread's checkpoints, newest first, full ids
    sutram fork THREAD [--checkpoint ID] [--new-thread ID] [--json]
                                                  a new thread from a checkpoint of THREAD
    sutram runs [--tenant T] [--thread ID] [--status S] [--search TEXT] [--model M] [--sort S] [--limit N] [--json]
                                                  runs of every tenant (or one) with status, duration, tokens and cost
    sutram stats [--tenant T] [--last 24h] [--buckets N] [--json]
                                                  tokens, cost, latency p50/p95, error rate: over time, by model, by graph
    sutram trace RUN_ID [--tenant T] [--json]     a run's span tree (durations, tokens, cost, errors), in whichever tenant
    sutram export --otlp URL [--tenant T] [--run RUN_ID ...] [--header NAME=VALUE ...]
                                                  send stored runs to an OpenTelemetry collector
    sutram audit verify [--tenant T] [--head F]   recompute the audit hash chains; exit 1 on a problem
    sutram audit head [--tenant T] [--out F]      the chains' heads (signed with the audit key), to keep elsewhere
    sutram runs show RUN_ID [--tenant T] [--json]  one durable run: status, where and why it stopped, spend
    sutram runs resume|cancel RUN_ID --graph module:attr [--json]
                                                  continue a paused run; cancel one (its compensations run)
    sutram recover --graph module:attr [--tenant T] resume the durable runs whose worker died
    sutram serve [--host H] [--port P] [--token T] [--tenant-token TENANT=T] [--allow-host NAME] [--graph module:attr]
                                                  the web console (default http://127.0.0.1:8787/)
    sutram diff THREAD_A THREAD_B [--tenant T] [--json]
                                                  how a fork diverged: state, calls (replayed or new), cost
    sutram memory search "QUERY" [--tenant T] [--kind K] [--namespace A/B] [--limit N] [--json]
                                                  hybrid search over a tenant's memories
    sutram memory list [--tenant T] [--kind K] [--namespace A/B] [--limit N] [--json]
                                                  a tenant's memories, newest first

Every command takes ``--url`` (default: ``SUTRAM_URL``, else ``./.sutram/sutram.db``). Every
command but ``demo`` needs the database to exist (a missing SQLite file is an error, never a
new empty database). The commands that only read (history, runs, trace, memory, audit
verify) open a SQLite file that they cannot write (the file or its folder: a read-only
mount) read-only, as ``?mode=ro`` would. ``--graph module:attr`` is imported with the
current folder on the path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sutram_adapters._term import Styled, Table, Terminal
from sutram_core.errors import ConfigurationError, SutramError
from sutram_core.tenancy import DEFAULT_TENANT
from sutram_core.traces.store import RUN_ORDER, RUN_SORTS

__all__ = ["main"]


def _history(args: argparse.Namespace) -> int:
    from sutram_adapters.langgraph import SutramSaver

    rows = []
    with SutramSaver.from_url(args.url, tenant=args.tenant) as saver:
        for t in saver.list({"configurable": {"thread_id": args.thread_id}}, limit=args.limit):
            rows.append({"checkpoint_id": t.config["configurable"]["checkpoint_id"],
                         "checkpoint_ns": t.config["configurable"]["checkpoint_ns"],
                         "step": t.metadata.get("step"), "source": t.metadata.get("source"),
                         "parent_id": t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None,
                         "pending_writes": len(t.pending_writes or [])})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no checkpoints for thread {args.thread_id!r}")
        return 0
    # the ids are what fork() and `sutram fork --checkpoint` take: never cut, however narrow the terminal
    table = Table(title=f"checkpoints of {args.thread_id}, newest first")
    table.add_column("checkpoint id", no_wrap=True)
    for col in ("ns", "step", "source", "writes"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["checkpoint_id"], r["checkpoint_ns"] or "(root)", str(r["step"]), str(r["source"]),
                      str(r["pending_writes"]))
    Terminal().print(table)
    return 0


def _run_show(args: argparse.Namespace) -> int:

    from sutram_adapters.run_identity import resolve_run
    from sutram_core.backends.sql.checkpoints import SqlCheckpointStore
    from sutram_core.backends.sql.database import Database
    from sutram_core.backends.sql.journal import SqlCallJournal
    from sutram_core.backends.sql.runs import SqlRunLedger
    from sutram_core.backends.sql.traces import SqlTraceStore
    from sutram_core.errors import RunNotFoundError

    db = Database(args.url)
    try:
        # the ledger's id or the trace id of any of its executions
        found = resolve_run(SqlRunLedger(db), SqlTraceStore(db), args.tenant, args.run_id)
        if found.durable is None:
            raise RunNotFoundError(f"no durable run {args.run_id!r} in tenant {args.tenant!r} (as a ledger id or "
                                   "the trace id of one of its executions); traced runs: sutram trace RUN_ID")
        run = found.durable
        entries = SqlCallJournal(db).entries(args.tenant, run.thread_id)
        stopped = ([] if run.status.value in ("completed", "cancelled")
                   else SqlCheckpointStore(db).stopped_tasks(args.tenant, run.thread_id))
    finally:
        db.close()
    mine = [(k, e) for k, e in entries if e.run_id == run.run_id]
    # where: the node that raised or was interrupted; for a run whose worker died, the node
    # of its last journaled call
    where = ", ".join(node for node, _ in stopped) or (
        mine[-1][0].checkpoint_ns.rpartition("|")[2].partition(":")[0] if mine else None)
    why = run.error or run.pause_reason
    info = {
        "run_id": run.run_id, "tenant": run.tenant_id, "thread_id": run.thread_id, "status": run.status.value,
        "graph": run.graph_name, "graph_version": run.graph_version, "executor": run.executor_id,
        "attempts": run.attempts, "where": where, "why": why, "budget": run.budget.as_dict(),
        "spend": run.spend.as_dict(), "overshoot": run.overshoot, "journaled_calls": len(mine),
        "traces": [t.run_id for t in found.traces],
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        print(f"{key:<{width}}  {value if value not in (None, '') else '-'}")
    return 0


def _import_graph(spec: str) -> object | None:
    """The compiled graph ``module:attribute`` names, imported with the current folder on
    the path as ``python -m`` would; None, with a message saying what to fix, otherwise."""
    import importlib

    module, _, attr = spec.partition(":")
    if not module or not attr:
        print("--graph takes module:attribute, for example myapp.agent:graph", file=sys.stderr)
        return None
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        print(f"--graph {spec}: no module named {exc.name!r} (looked in {Path.cwd()} and the installed packages; "
              "run the command from your app's folder or install it)", file=sys.stderr)
        return None
    except Exception as exc:  # the user's module failed while importing
        print(f"--graph {spec}: importing {module!r} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    graph = getattr(found, attr, None)
    if graph is None:
        names = sorted(n for n in vars(found) if not n.startswith("_"))
        print(f"--graph {spec}: module {module!r} has no {attr!r} (it has: {', '.join(names[:12]) or 'nothing'})",
              file=sys.stderr)
        return None
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    if isinstance(graph, StateGraph):
        print(f"--graph {spec}: {attr!r} is a StateGraph that is not compiled: name the compiled graph "
              f"(for example {attr}_app = {attr}.compile() in {module})", file=sys.stderr)
        return None
    if not isinstance(graph, Pregel):
        print(f"--graph {spec}: {attr!r} is a {type(graph).__name__}, not a compiled LangGraph graph",
              file=sys.stderr)
        return None
    return graph


def _serve(args: argparse.Namespace) -> int:
    from sutram_adapters.console.app import (  # first: names a missing extra
        ConsoleAccess,
        check_bind,
        create_app,
    )

    tenant_tokens = dict(item.split("=", 1) for item in args.tenant_token or [] if "=" in item)
    if len(tenant_tokens) != len(args.tenant_token or []):
        print("--tenant-token takes TENANT=TOKEN", file=sys.stderr)
        return 2
    check_bind(args.host, ConsoleAccess(args.token, tuple(tenant_tokens.items())))
    factory = None
    if args.graph:
        graph = _import_graph(args.graph)
        if graph is None:
            return 2
        from sutram_adapters.langgraph.durable import durable

        def factory(tenant: str) -> object:
            return durable(graph, url=args.url, tenant=tenant)

    app = create_app(args.url, token=args.token, tenant_tokens=tenant_tokens, runner_factory=factory,
                     host=args.host, allow_hosts=args.allow_host)
    print(f"Sutram console on http://{args.host}:{args.port}/ (database {args.url or 'from SUTRAM_URL or default'}; "
          f"answers Host {', '.join(sorted(app.state.allowed_hosts))})")
    import uvicorn  # after the console: its import names a missing extra

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from sutram_adapters.langgraph.durable import durable

    graph = _import_graph(args.graph)
    if graph is None:
        return 2
    done: list[str] = []

    def ended(run: Any) -> None:  # one line per run as it ends: progress over many runs
        done.append(run.run_id)
        print(f"{run.run_id}  {run.status.value}  {run.error or run.pause_reason or ''}".rstrip(), flush=True)

    with durable(graph, url=args.url, tenant=args.tenant, lease_seconds=args.lease) as runner:
        runner.recover(limit=args.limit, on_run=ended)
    print(f"recovered {len(done)} run(s)" if done else "no run to recover")
    return 0


def _run_act(args: argparse.Namespace) -> int:
    """``sutram runs resume|cancel RUN_ID --graph module:attr``."""
    from sutram_adapters.langgraph.durable import durable

    if not args.graph:
        print(f"sutram runs {args.action} needs --graph module:attribute: the graph's code runs the rest of the run "
              "(resume) or its compensations (cancel)", file=sys.stderr)
        return 2
    graph = _import_graph(args.graph)
    if graph is None:
        return 2
    from sutram_core.runs import Budget

    limits = {f"max_{k}": getattr(args, f"max_{k}") for k in ("tokens", "cost_usd", "steps", "seconds")}
    budget = Budget(**limits) if any(v is not None for v in limits.values()) else None
    with durable(graph, url=args.url, tenant=args.tenant) as runner:
        if args.action == "resume":
            runner.resume(args.run_id, budget=budget)
        else:
            runner.cancel(args.run_id)
        run = runner.ledger.get(args.tenant, args.run_id)
    if args.json:
        print(json.dumps({"run_id": run.run_id, "tenant": run.tenant_id, "thread_id": run.thread_id,
                          "status": run.status.value, "why": run.error or run.pause_reason}))
    else:
        print(f"{run.run_id}  {run.status.value}  {run.error or run.pause_reason or ''}".rstrip())
    return 0


def _fork(args: argparse.Namespace) -> int:
    from sutram_adapters.langgraph import SutramSaver
    from sutram_adapters.langgraph.durable import fork_thread

    with SutramSaver.from_url(args.url, tenant=args.tenant) as saver:
        new = fork_thread(saver, args.thread_id, args.checkpoint, new_thread_id=args.new_thread)
        (first,) = saver.list({"configurable": {"thread_id": new}}, limit=1)
    checkpoint = first.metadata.get("sutram_fork_of", {}).get("checkpoint_id")
    if args.json:
        print(json.dumps({"thread_id": new, "forked_from": args.thread_id, "checkpoint_id": checkpoint}))
    else:
        print(f"forked {args.thread_id} at checkpoint {checkpoint} into thread {new}; continue it with "
              f"invoke(None, thread_id={new!r})")
    return 0


def _runs(args: argparse.Namespace) -> int:
    if args.action:
        if not args.run_id:
            print(f"sutram runs {args.action} needs a RUN_ID (list them with: sutram runs)", file=sys.stderr)
            return 2
        if not _pick_tenant(args):
            return 2
        return _run_show(args) if args.action == "show" else _run_act(args)
    from sutram_adapters.trace_view import render_runs, runs_json
    from sutram_core.traces import open_trace_store

    with open_trace_store(args.url) as store:
        # every read is scoped to one tenant: all tenants is each one's newest runs, merged
        tenants = [args.tenant] if args.tenant else store.audit_tenants()
        runs = sorted((r for t in tenants for r in store.runs(t, thread_id=args.thread, status=args.status,
                                                               limit=args.limit, text=args.search,
                                                               model=args.model, sort=args.sort)),
                      key=RUN_ORDER[args.sort])[: args.limit]
    if args.json:
        print(runs_json(runs))
    elif runs:
        render_runs(runs, Terminal())
    else:
        print(f"no runs for tenant {args.tenant!r}" if args.tenant else "no runs")
    return 0


def _tenant_of_run(url: str | None, run_id: str) -> str | list[str]:
    """The tenant holding a trace or durable run ``run_id`` (ids are unique in practice), or
    the tenants that do when none or several do."""
    from sutram_core.backends.sql.database import Database
    from sutram_core.backends.sql.runs import SqlRunLedger
    from sutram_core.backends.sql.traces import SqlTraceStore
    from sutram_core.errors import RunNotFoundError

    db = Database(url)
    try:
        traces, ledger = SqlTraceStore(db), SqlRunLedger(db)
        found = []
        for tenant in sorted(set(traces.audit_tenants()) | {DEFAULT_TENANT}):
            if traces.run_spans(tenant, run_id):
                found.append(tenant)
                continue
            try:
                ledger.get(tenant, run_id)
                found.append(tenant)
            except RunNotFoundError:
                pass
    finally:
        db.close()
    return found[0] if len(found) == 1 else found


def _pick_tenant(args: argparse.Namespace) -> bool:
    """Set ``args.tenant`` from the run id when no --tenant was given; False (with a message)
    when the id is in several tenants."""
    if args.tenant is not None:
        return True
    found = _tenant_of_run(args.url, args.run_id)
    if isinstance(found, str):
        args.tenant = found
        return True
    if found:
        print(f"run {args.run_id!r} exists in tenants {', '.join(found)}: name one with --tenant", file=sys.stderr)
        return False
    args.tenant = DEFAULT_TENANT  # not found: the command says so for the default tenant
    return True


def _trace(args: argparse.Namespace) -> int:
    from sutram_adapters.trace_view import render_trace, spans_json
    from sutram_core.traces import open_trace_store

    if not _pick_tenant(args):
        return 2
    with open_trace_store(args.url) as store:
        spans = store.run_spans(args.tenant, args.run_id)
        if not spans:  # a durable run's ledger id: its newest execution's trace
            newest = [t for t in store.runs(args.tenant, limit=500) if t.durable_run_id == args.run_id]
            spans = store.run_spans(args.tenant, newest[0].run_id) if newest else []
    if not spans:
        print(f"no run {args.run_id!r} for tenant {args.tenant!r}; list runs with: sutram runs --tenant {args.tenant}",
              file=sys.stderr)
        return 1
    if args.json:
        print(spans_json(spans))
    else:
        render_trace(spans, Terminal())
    return 0


def _stats(args: argparse.Namespace) -> int:
    import json
    import time

    from sutram_adapters.trace_view import render_stats
    from sutram_core.traces import open_trace_store
    from sutram_core.traces.stats import parse_span

    until = time.time_ns()
    since = until - parse_span(args.last)
    with open_trace_store(args.url) as store:
        tenants = [args.tenant] if args.tenant else store.audit_tenants()
        found = [store.stats(t, since, until, buckets=args.buckets) for t in tenants]
    if args.json:
        print(json.dumps([s.as_dict() for s in found], indent=2))
    else:
        for s in found:
            render_stats(s, Terminal())
    return 0


def _export(args: argparse.Namespace) -> int:
    from sutram_core.traces import OtlpExporter, open_trace_store

    headers = dict(h.split("=", 1) for h in args.header or [] if "=" in h)
    if len(headers) != len(args.header or []):
        print("--header takes NAME=VALUE, for example Authorization='Basic ...'", file=sys.stderr)
        return 2
    try:
        exporter = OtlpExporter(args.otlp, headers=headers or None, retry_after=3600.0)
    except ConfigurationError as exc:
        print(f"--otlp: {exc}", file=sys.stderr)
        return 2
    if not exporter.reachable():
        print(f"nothing sent: {exporter.last_error} (is the collector running?)", file=sys.stderr)
        return 1
    runs = spans = 0
    progress = sys.stderr.isatty()
    try:
        with open_trace_store(args.url) as store:
            run_ids = args.run or [r.run_id for r in store.runs(args.tenant, limit=args.limit)]
            for run_id in run_ids:
                batch = store.run_spans(args.tenant, run_id)
                exporter.export(batch)
                if exporter.failed:
                    break
                runs += 1
                spans += sum(s.status != "running" for s in batch)
                if progress:
                    print(f"\rsent {spans} spans of {runs}/{len(run_ids)} runs", end="", file=sys.stderr, flush=True)
    finally:
        exporter.shutdown()
        if progress:
            print(file=sys.stderr)
    if exporter.failed:
        print(f"stopped after {exporter.exported} spans of {runs} runs: {exporter.endpoint} failed "
              f"({exporter.last_error}); run the command again to send the rest (ids repeat, nothing doubles)",
              file=sys.stderr)
        return 1
    print(f"exported {spans} span{'s' if spans != 1 else ''} of {runs} run{'s' if runs != 1 else ''} "
          f"to {exporter.endpoint}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from sutram_core.traces import open_trace_store
    from sutram_core.traces.audit import check_heads, head_record, load_audit_key

    key = load_audit_key()
    with open_trace_store(args.url) as store:
        tenants = [args.tenant] if args.tenant else store.audit_tenants()
        reports = {tenant: store.verify_audit(tenant) for tenant in tenants}
        if args.action == "head":
            lines = [json.dumps(head_record(t, r.head_seq, r.head_hash, key)) for t, r in reports.items()
                     if r.head_seq]
            out = "".join(line + "\n" for line in lines)
            if args.out:
                Path(args.out).write_text(out)
                print(f"{len(lines)} head(s) written to {args.out}; keep the file where the database's "
                      "writers cannot change it", file=sys.stderr)
            else:
                sys.stdout.write(out)
            if key is None:
                print("note: no audit key (SUTRAM_AUDIT_KEY): the heads are not signed", file=sys.stderr)
            return 0
        if args.head:
            try:
                heads = [json.loads(line) for line in Path(args.head).read_text().splitlines() if line.strip()]
            except (OSError, ValueError) as exc:
                print(f"cannot read the heads in {args.head}: {exc}", file=sys.stderr)
                return 2
            if args.tenant:
                heads = [h for h in heads if h.get("tenant") == args.tenant]
            check_heads(reports, heads, store.audit_hash, key)
    bad = 0
    for tenant, report in sorted(reports.items()):
        if report.ok:
            how = "signed with the audit key" if report.keyed else "not keyed: detects edits, not a recomputed chain"
            print(f"tenant {tenant}: ok ({report.entries} entries, {report.records} records; {how})")
            continue
        bad += 1
        print(f"tenant {tenant}: {len(report.problems)} problem(s)")
        for p in report.problems:
            print(f"  - {p.what}")
    if not reports:
        print("no audit log yet")
    return 1 if bad else 0


def _memory(args: argparse.Namespace) -> int:
    from sutram_adapters.memory_view import memories_json, render_memories
    from sutram_core.memory import MemoryStore

    namespace = tuple(p for p in (args.namespace or "").split("/") if p)
    # listing needs no embedder; a search loads the default one (offline)
    with MemoryStore.from_url(args.url, tenant=args.tenant,
                              embedder=None if args.action == "search" else False) as store:
        hits = store.search(args.query if args.action == "search" else None, namespace=namespace, kind=args.kind,
                            limit=args.limit)
    if args.json:
        print(memories_json(hits))
    else:
        title = f"memories of tenant {args.tenant}" + (f" matching {args.query!r}" if args.action == "search" else "")
        render_memories(hits, Terminal().wider(150), title)
    return 0


def _diff(args: argparse.Namespace) -> int:
    from sutram_adapters.langgraph.diff import diff_threads

    found = diff_threads(args.url, args.tenant, args.thread_a, args.thread_b)
    if args.json:
        print(json.dumps(found.as_dict(), indent=1, default=str))
        return 0
    console = Terminal().wider(150)
    origin = found.forked_from
    console.print(f"{console.paint(found.thread_b, 'bold')} against {console.paint(found.thread_a, 'bold')}"
                  + (f": forked from {origin['thread_id']} at checkpoint {origin['checkpoint_id']}" if origin else ""),
                  markup=False)  # thread ids are the user's: never read as markup
    if found.first_divergent_step is None and not found.state:
        console.print("Same latest state.")
    else:
        console.print(f"State first differs at step {found.first_divergent_step}.")
        table = Table(title="channels whose latest values differ")
        for col in ("channel", found.thread_a, found.thread_b):
            table.add_column(col)
        for channel, (a, b) in found.state.items():
            table.add_row(channel, _short(a), _short(b))
        console.print(table)
    if found.calls:
        calls = Table(title="journaled calls")
        for col in ("node", "#", "kind", "name", "in B", "tokens", "USD"):
            calls.add_column(col)
        colour = {"replayed": "green", "new": "yellow", "only in A": "red"}
        for row in found.calls:
            calls.add_row(row.node, str(row.index), row.kind, row.name,
                          Styled(row.status, colour.get(row.status, "")), str(row.tokens), f"{row.cost_usd:.6f}")
        console.print(calls)
    else:
        console.print("No journaled calls in either thread.")
    a, new, replayed = found.cost["a"], found.cost["b_new"], found.cost["b_replayed"]
    console.print(f"{found.thread_a} paid for {a['calls']:.0f} call(s), {a['tokens']:.0f} tokens, "
                  f"${a['cost_usd']:.6f}. {found.thread_b} paid for {new['calls']:.0f} new call(s), "
                  f"{new['tokens']:.0f} tokens, ${new['cost_usd']:.6f}; {replayed['calls']:.0f} call(s) "
                  f"({replayed['tokens']:.0f} tokens, ${replayed['cost_usd']:.6f}) were answered from the journal.",
                  markup=False)
    return 0


def _short(value: object, width: int = 200) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


_TENANT_HELP = "the tenant (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    from sutram_core import __version__

    parser = argparse.ArgumentParser(prog="sutram", description="Sutram: durable, remembering, traceable AI workflows.",
                                     epilog="Every command takes --url (default: SUTRAM_URL, else "
                                            "sqlite:///.sutram/sutram.db). sutram COMMAND --help for more.")
    parser.add_argument("--version", action="version", version=f"sutram {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".")
        p.add_argument("--url", default=None, help="database URL (default: SUTRAM_URL, else sqlite:///.sutram/sutram.db)")
        return p

    command("demo", "SIGKILL a durable agent mid-node and recover it (no call repeated), pause a run on its budget, show the trace")
    hist = command("history", "list a thread's checkpoints, newest first, with their full ids (for fork)")
    hist.add_argument("thread_id")
    hist.add_argument("--tenant", default=DEFAULT_TENANT, help=_TENANT_HELP)
    hist.add_argument("--limit", type=int, default=None, help="at most this many checkpoints (default: all)")
    hist.add_argument("--json", action="store_true", help="print the checkpoints as a JSON list")
    runs = command("runs", "list runs with status, duration, tokens and cost; show, resume or cancel one durable run")
    runs.add_argument("action", nargs="?", choices=["show", "resume", "cancel"],
                      help="show: one run of the run ledger; resume: continue a paused run; cancel: cancel a run "
                           "that is not running and undo its completed steps (resume and cancel need --graph)")
    runs.add_argument("run_id", nargs="?", default=None)
    runs.add_argument("--tenant", default=None, help="one tenant (default: every tenant; for one run, the run's)")
    runs.add_argument("--thread", default=None, help="only the runs of this thread")
    runs.add_argument("--status", default=None, choices=["running", "ok", "error", "paused", "failed", "cancelled"],
                      help="a trace's running/ok/error, or a durable run's paused/failed/cancelled (from the ledger)")
    runs.add_argument("--search", default=None, metavar="TEXT",
                      help="only runs whose input, output or error contains TEXT (any case)")
    runs.add_argument("--model", default=None, help="only runs that called this model")
    runs.add_argument("--sort", default="newest", choices=list(RUN_SORTS),
                      help="newest, oldest, slowest, fastest, tokens or cost first (default: %(default)s)")
    runs.add_argument("--limit", type=int, default=50, help="at most this many runs, newest first (default: %(default)s)")
    runs.add_argument("--graph", default=None, help="resume, cancel: the compiled graph, as module:attribute")
    for limit, kind in (("tokens", int), ("cost-usd", float), ("steps", int), ("seconds", float)):
        runs.add_argument(f"--max-{limit}", type=kind, default=None,
                          help=f"resume: a new budget's max_{limit.replace('-', '_')} (default: the run's budget)")
    runs.add_argument("--json", action="store_true", help="print JSON")
    stats = command("stats", "tokens, cost, latency (p50/p95) and error rate over time, by model and by graph")
    stats.add_argument("--tenant", default=None, help="one tenant (default: each tenant in turn)")
    stats.add_argument("--last", default="24h", help="the window, ending now: 90m, 24h, 7d... (default: %(default)s)")
    stats.add_argument("--buckets", type=int, default=24, help="time slices of the window (default: %(default)s)")
    stats.add_argument("--json", action="store_true", help="print JSON")
    trace = command("trace", "show one run's span tree")
    trace.add_argument("run_id", help="a trace id, or a durable run's id (its newest execution)")
    trace.add_argument("--tenant", default=None, help="the run's tenant (default: whichever tenant holds the id)")
    trace.add_argument("--json", action="store_true", help="print the spans as a JSON list")
    fork = command("fork", "start a new thread from a checkpoint of a thread (its latest by default)")
    fork.add_argument("thread_id")
    fork.add_argument("--checkpoint", default=None, metavar="ID", help="the checkpoint (sutram history THREAD)")
    fork.add_argument("--new-thread", default=None, metavar="ID", help="the new thread's id (default: THREAD-fork-…)")
    fork.add_argument("--tenant", default=DEFAULT_TENANT, help=_TENANT_HELP)
    fork.add_argument("--json", action="store_true", help="print JSON")
    export = command("export", "send stored runs to an OpenTelemetry collector over OTLP/HTTP")
    export.add_argument("--otlp", required=True, metavar="URL", help="collector URL, e.g. http://localhost:4318")
    export.add_argument("--tenant", default=DEFAULT_TENANT, help=_TENANT_HELP)
    export.add_argument("--run", action="append", help="a run id (repeatable; default: the newest runs)")
    export.add_argument("--limit", type=int, default=1000, help="how many of the newest runs (default: %(default)s)")
    export.add_argument("--header", action="append", metavar="NAME=VALUE",
                        help="an HTTP header for the collector, e.g. Authorization=Basic ... (repeatable)")
    audit = command("audit", "verify the audit hash chains, or print their heads to keep elsewhere")
    audit.add_argument("action", choices=["verify", "head"])
    audit.add_argument("--tenant", default=None, help="one tenant (default: every tenant with an audit log or spans)")
    audit.add_argument("--head", default=None, metavar="FILE",
                       help="verify: also check the chains still reach the heads kept in FILE")
    audit.add_argument("--out", default=None, metavar="FILE", help="head: write the heads to FILE")
    recover = command("recover", "resume the durable runs whose worker died")
    recover.add_argument("--graph", required=True, help="the compiled graph, as module:attribute (from the current "
                         "folder or an installed package)")
    recover.add_argument("--tenant", default=DEFAULT_TENANT, help=_TENANT_HELP)
    recover.add_argument("--limit", type=int, default=10, help="at most this many runs (default: %(default)s)")
    recover.add_argument("--lease", type=float, default=30.0,
                         help="lease seconds for the resumed runs (default: %(default)s)")
    serve = command("serve", "the web console: runs, traces, checkpoints, paused runs, memory, audit")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: %(default)s; beyond loopback needs a token)")
    serve.add_argument("--port", type=int, default=8787, help="port (default: %(default)s)")
    serve.add_argument("--token", default=None, help="an access token that sees every tenant")
    serve.add_argument("--tenant-token", action="append", metavar="TENANT=TOKEN",
                       help="an access token that sees one tenant (repeatable)")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="a Host name the console answers besides localhost, 127.0.0.1, [::1] and --host "
                            "(repeatable; others get 421, against DNS rebinding)")
    serve.add_argument("--graph", default=None, help="module:attr of the compiled graph, to resume paused runs")
    diff = command("diff", "how two threads (a thread and its fork) diverged: state, calls, cost")
    diff.add_argument("thread_a")
    diff.add_argument("thread_b")
    diff.add_argument("--tenant", default=DEFAULT_TENANT, help=_TENANT_HELP)
    diff.add_argument("--json", action="store_true", help="print JSON")
    memory = command("memory", "search or list a tenant's memories")
    memory.add_argument("action", choices=["search", "list"])
    memory.add_argument("query", nargs="?", default=None, help="what to search for (search only)")
    memory.add_argument("--tenant", default=DEFAULT_TENANT, help=_TENANT_HELP)
    memory.add_argument("--kind", default=None, choices=["episodic", "semantic", "procedural"])
    memory.add_argument("--namespace", default=None, help="a namespace prefix, labels joined by / (e.g. users/u1)")
    memory.add_argument("--limit", type=int, default=20, help="at most this many memories (default: %(default)s)")
    memory.add_argument("--json", action="store_true", help="print the memories as a JSON list")
    return parser


_READ_ONLY_COMMANDS = ("history", "runs", "trace", "memory", "audit", "stats")
# commands that need a database to be there already (all but demo)
_EXISTING_DATABASE_COMMANDS = (*_READ_ONLY_COMMANDS, "export", "diff", "serve", "fork", "recover")


def _existing_database(url: str | None) -> str | None:
    """None when the database at ``url`` exists; else what to tell the user (a command that
    reads must not create an empty database and report that it is empty)."""
    from sutram_core.config import parse_url

    parsed = parse_url(url)
    if parsed.backend != "sqlite" or parsed.path is None or parsed.path.is_file():
        return None
    return (f"no database at {parsed.path} ({url or 'the default; set --url or SUTRAM_URL'}): "
            "give the URL your app writes to, e.g. --url sqlite:///app.db")


def _readable_url(url: str | None) -> str | None:
    """``url``, or the same SQLite file opened read-only when this process cannot write it."""
    from sutram_core.config import read_only_if_unwritable

    chosen = read_only_if_unwritable(url)
    if chosen != url:
        print(f"sutram: the database file or its folder is not writable here: reading it read-only ({chosen})",
              file=sys.stderr)
    return chosen


def main(argv: list[str] | None = None) -> int:
    """Run the ``sutram`` command with ``argv`` (default: the process arguments)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_demo-worker"]:  # the demo's own worker process, not a command for people
        from sutram_adapters.demo.run import worker as run_worker

        run_worker(argv[1], argv[2])
        return 0
    args = _parser().parse_args(argv)
    try:
        if args.command in _EXISTING_DATABASE_COMMANDS:
            missing = _existing_database(args.url)
            if missing:
                print(f"sutram {args.command}: {missing}", file=sys.stderr)
                return 1
        if args.command in _READ_ONLY_COMMANDS:
            args.url = _readable_url(args.url)
        if args.command == "demo":
            from sutram_adapters.demo import run_demo

            run_demo(args.url)
            return 0
        if args.command == "memory" and args.action == "search" and not args.query:
            print("sutram memory search needs a QUERY", file=sys.stderr)
            return 2
        handler = {"runs": _runs, "trace": _trace, "export": _export, "audit": _audit, "history": _history,
                   "memory": _memory, "recover": _recover, "diff": _diff, "serve": _serve, "fork": _fork,
                   "stats": _stats}[args.command]
        return handler(args)
    except SutramError as exc:
        print(f"sutram: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
