"""How runs and traces look in a terminal (``sutram runs``, ``sutram trace``, the demo)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sutram_adapters._term import Styled, Table, Terminal
from sutram_core.traces import RunSummary, StoredSpan, span_tree
from sutram_core.traces.stats import Stats
from sutram_core.traces.store import total_cost

__all__ = ["render_runs", "render_trace", "runs_json", "spans_json"]


def _ms(value: float | None) -> str:
    if value is None:
        return "running"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def _cost(value: float | None) -> str:
    """A cost as shown everywhere: dollars, or "unknown" for a model call without a price
    (the JSON says null; never a guessed 0)."""
    return "unknown" if value is None else f"${value:.6f}"


def render_runs(runs: Sequence[RunSummary], console: Terminal) -> None:
    """A table of runs: id (and a durable run's ledger id), name, thread, tenant, status
    (a durable run's paused, failed or cancelled from the ledger), start, duration, tokens, cost."""
    table = Table(title="runs, newest first")
    table.add_column("run", no_wrap=True)
    table.add_column("durable run", no_wrap=True)
    for col in ("name", "thread", "tenant", "status", "started (UTC)", "duration", "tokens in/out", "cost"):
        table.add_column(col)
    for r in runs:
        started = datetime.fromtimestamp(r.start_ns / 1e9, timezone.utc).strftime("%m-%d %H:%M:%S")
        state = r.state
        status = Styled(state, "red" if state in ("error", "failed") else "green" if state == "ok" else "yellow")
        table.add_row(r.run_id, r.durable_run_id or "-", r.name, r.thread_id or "-", r.tenant_id, status, started,
                      _ms(r.duration_ms), f"{r.input_tokens}/{r.output_tokens}", _cost(r.cost_usd))
    # full run ids are what ``sutram trace`` takes: never squeeze them into ellipses
    console.wider(150).print(table)


def render_stats(stats: Stats, console: Terminal) -> None:
    """A tenant's window as two tables: by graph (runs) and by model (calls), with a total."""
    def ms(v: float | None) -> str:
        return "-" if v is None else _ms(v)

    since = datetime.fromtimestamp(stats.since_ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M")
    until = datetime.fromtimestamp(stats.until_ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M")
    t = stats.total
    console.print(f"{console.paint(stats.tenant, 'bold')}  {since} to {until} UTC: {t.count} runs, {t.errors} failed "
                  f"({t.error_rate:.1%}), tokens {t.input_tokens}/{t.output_tokens}, {_cost(t.cost_usd)}, "
                  f"p50 {ms(t.p50_ms)}, p95 {ms(t.p95_ms)}", markup=False)
    console = console.wider(120)  # model names and costs unabridged
    for title, groups, what in (("by graph", stats.graphs, "runs"), ("by model", stats.models, "calls")):
        if not groups:
            continue
        table = Table(title=title)
        for col in ("name", what, "errors", "error rate", "tokens in/out", "cost", "p50", "p95"):
            table.add_column(col, justify="left" if col == "name" else "right")
        for g in groups:
            table.add_row(g.key, str(g.count), str(g.errors), f"{g.error_rate:.1%}",
                          f"{g.input_tokens}/{g.output_tokens}", _cost(g.cost_usd), ms(g.p50_ms), ms(g.p95_ms))
        console.print(table)


def runs_json(runs: Sequence[RunSummary]) -> str:
    """The runs as a JSON list."""
    return json.dumps([{
        "run_id": r.run_id, "durable_run_id": r.durable_run_id, "name": r.name, "thread_id": r.thread_id,
        "tenant_id": r.tenant_id, "status": r.state, "trace_status": r.status, "start_ns": r.start_ns, "end_ns": r.end_ns, "duration_ms": r.duration_ms, "spans": r.spans,
        "input_tokens": r.input_tokens, "output_tokens": r.output_tokens, "cost_usd": r.cost_usd, "errors": r.errors,
        "input_preview": r.input_preview, "output_preview": r.output_preview,
    } for r in runs], indent=2)


def _label(span: StoredSpan) -> list[tuple[str, str]]:
    """One span's line as (text, style) pieces."""
    parts = [(span.name, "bold red" if span.status == "error" else "bold"), (f"  {span.kind}", "cyan"),
             (f"  {_ms(span.duration_ms)}", "dim")]
    if span.input_tokens is not None or span.output_tokens is not None:
        parts.append((f"  tokens {span.input_tokens or 0}/{span.output_tokens or 0}", "magenta"))
    if span.cost_usd or (span.kind == "llm" and span.cost_usd is None):
        parts.append((f"  {_cost(span.cost_usd)}", "magenta"))
    if span.attributes.get("sutram.replayed"):
        parts.append((f"  from the journal ({span.attributes.get('sutram.replayed_tokens', 0)} tokens, not paid again)",
                      "green"))
    if span.tool_call_id:
        parts.append((f"  call {span.tool_call_id}", "dim"))
    if span.step is not None and span.kind == "node":
        parts.append((f"  step {span.step}", "dim"))
    if span.checkpoint_id:
        parts.append((f"  -> checkpoint {span.checkpoint_id}", "green"))
    if span.status == "error":
        parts.append((f"  {span.error_type}: {span.error_message or ''}", "red"))
    return parts


def render_trace(spans: Sequence[StoredSpan], console: Terminal) -> None:
    """The run as a tree, with durations, tokens, cost, errors and checkpoint links.

    Drawn as plain lines (with ANSI colours on a colour terminal) and written at once:
    a tree of 5,000 spans is one write.
    """
    colour = console.colour

    def line(prefix: str, parts: list[tuple[str, str]]) -> str:
        if not colour:
            return prefix + "".join(text for text, _ in parts)
        body = "".join(console.paint(text, style) for text, style in parts)
        return console.paint(prefix, "dim") + body

    out: list[str] = []
    for root in span_tree(spans):
        out.append(line("", _label(root)))
        # iterative depth-first walk: deep traces do not hit the recursion limit
        n = len(root.children)
        stack = [(root.children[i], "", i == n - 1) for i in range(n - 1, -1, -1)]
        while stack:
            span, prefix, last = stack.pop()
            out.append(line(prefix + ("└── " if last else "├── "), _label(span)))
            child_prefix = prefix + ("    " if last else "│   ")
            n = len(span.children)
            stack.extend((span.children[i], child_prefix, i == n - 1) for i in range(n - 1, -1, -1))
    tokens_in = sum(s.input_tokens or 0 for s in spans)
    tokens_out = sum(s.output_tokens or 0 for s in spans)
    cost = total_cost([s.cost_usd for s in spans if s.kind == "llm" or s.cost_usd is not None])
    errors = sum(s.status == "error" for s in spans)
    out.append(f"{len(spans)} spans, tokens {tokens_in}/{tokens_out}, cost {_cost(cost)}, errors {errors}")
    console.file.write("\n".join(out) + "\n")
    console.file.flush()


def spans_json(spans: Sequence[StoredSpan]) -> str:
    """The spans as a JSON list: span_id, parent_id, name, attributes (OTel names) and timing."""
    out: list[dict[str, Any]] = [{
        "span_id": s.span_id, "parent_id": s.parent_id, "name": s.name, "kind": s.kind, "status": s.status,
        "start_ns": s.start_ns, "end_ns": s.end_ns, "attributes": s.otel_attributes(),
    } for s in spans]
    return json.dumps(out, indent=2, default=str)
