"""How runs and traces look in a terminal (``sutram runs``, ``sutram trace``, the demo)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from sutram_core.traces import RunSummary, StoredSpan, span_tree

__all__ = ["render_runs", "render_trace", "runs_json", "spans_json"]


def _ms(value: float | None) -> str:
    if value is None:
        return "running"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def _cost(value: float | None) -> str:
    return "-" if not value else f"${value:.6f}"


def render_runs(runs: Sequence[RunSummary], console: Console) -> None:
    """A table of runs: id, name, thread, tenant, status, start, duration, tokens, cost."""
    tenants = sorted({r.tenant_id for r in runs})
    table = Table(title=f"runs of tenant {', '.join(tenants)}, newest first")
    table.add_column("run", no_wrap=True)
    for col in ("name", "thread", "status", "started (UTC)", "duration", "tokens in/out", "cost"):
        table.add_column(col)
    for r in runs:
        started = datetime.fromtimestamp(r.start_ns / 1e9, timezone.utc).strftime("%m-%d %H:%M:%S")
        status = Text(r.status, style="red" if r.status == "error" else "green" if r.status == "ok" else "yellow")
        table.add_row(r.run_id, r.name, r.thread_id or "-", status, started, _ms(r.duration_ms),
                      f"{r.input_tokens}/{r.output_tokens}", _cost(r.cost_usd))
    # full run ids are what ``sutram trace`` takes: never squeeze them into ellipses
    if console.width < 140:
        console = Console(file=console.file, width=140, color_system=console.color_system, soft_wrap=True)
    console.print(table)


def runs_json(runs: Sequence[RunSummary]) -> str:
    """The runs as a JSON list."""
    return json.dumps([{
        "run_id": r.run_id, "name": r.name, "thread_id": r.thread_id, "tenant_id": r.tenant_id, "status": r.status,
        "start_ns": r.start_ns, "end_ns": r.end_ns, "duration_ms": r.duration_ms, "spans": r.spans,
        "input_tokens": r.input_tokens, "output_tokens": r.output_tokens, "cost_usd": r.cost_usd, "errors": r.errors,
    } for r in runs], indent=2)


def _label(span: StoredSpan) -> Text:
    text = Text()
    text.append(span.name, style="bold red" if span.status == "error" else "bold")
    text.append(f"  {span.kind}", style="cyan")
    text.append(f"  {_ms(span.duration_ms)}", style="dim")
    if span.input_tokens is not None or span.output_tokens is not None:
        text.append(f"  tokens {span.input_tokens or 0}/{span.output_tokens or 0}", style="magenta")
    if span.cost_usd:
        text.append(f"  {_cost(span.cost_usd)}", style="magenta")
    if span.tool_call_id:
        text.append(f"  call {span.tool_call_id}", style="dim")
    if span.step is not None and span.kind == "node":
        text.append(f"  step {span.step}", style="dim")
    if span.checkpoint_id:
        text.append(f"  -> checkpoint {span.checkpoint_id}", style="green")
    if span.status == "error":
        text.append(f"  {span.error_type}: {span.error_message or ''}", style="red")
    return text


def render_trace(spans: Sequence[StoredSpan], console: Console) -> None:
    """The run as a tree, with durations, tokens, cost, errors and checkpoint links."""
    roots = span_tree(spans)
    tokens_in = sum(s.input_tokens or 0 for s in spans)
    tokens_out = sum(s.output_tokens or 0 for s in spans)
    cost = sum(s.cost_usd or 0 for s in spans)
    errors = sum(s.status == "error" for s in spans)
    for root in roots:
        tree = Tree(_label(root))
        stack: list[tuple[StoredSpan, Tree]] = [(root, tree)]
        while stack:  # iterative: deep traces do not hit the recursion limit
            span, branch = stack.pop()
            for child in span.children:
                stack.append((child, branch.add(_label(child))))
        console.print(tree)
    console.print(f"{len(spans)} spans, tokens {tokens_in}/{tokens_out}, cost {_cost(cost)}, errors {errors}")


def spans_json(spans: Sequence[StoredSpan]) -> str:
    """The spans as a JSON list: span_id, parent_id, name, attributes (OTel names) and timing."""
    out: list[dict[str, Any]] = [{
        "span_id": s.span_id, "parent_id": s.parent_id, "name": s.name, "kind": s.kind, "status": s.status,
        "start_ns": s.start_ns, "end_ns": s.end_ns, "attributes": s.otel_attributes(),
    } for s in spans]
    return json.dumps(out, indent=2, default=str)
