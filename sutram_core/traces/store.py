"""The trace store interface and the records its queries return."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sutram_core.traces.audit import AuditReport
from sutram_core.traces.messages import genai_json, input_messages, output_messages
from sutram_core.traces.spans import GENAI_COLUMNS
from sutram_core.traces.stats import Stats

__all__ = ["RUN_ORDER", "RUN_SORTS", "SPAN_COLUMNS", "RunSummary", "StoredSpan", "Totals", "TraceStore", "one_line", "preview", "span_tree"]

_CHAT_OPERATIONS = frozenset({"chat", "text_completion"})

# the stored columns of a span, in table order
SPAN_COLUMNS: tuple[str, ...] = (
    "tenant_id", "span_id", "run_id", "parent_id", "name", "kind", "operation", "status",
    "error_type", "error_message", "start_ns", "end_ns", "thread_id", "checkpoint_ns",
    "task_id", "step", "provider", "request_model", "response_model", "input_tokens",
    "output_tokens", "cache_read_tokens", "cost_usd", "tool_name", "tool_call_id",
    "inputs", "outputs", "attributes",
)


_GIST_KEYS = ("messages", "input", "query", "question", "output", "answer", "response", "content", "text", "message")


def _leaf_text(value: Any, last: bool) -> str | None:
    """The text a person would call a value's gist: a chat's last message, a well-known key
    (input, query, answer...), else the first string found depth first (the last one, for
    an output: a graph's final state keeps its result in its later channels)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _GIST_KEYS:
            if key in value:
                found = _leaf_text(value[key], last)
                if found:
                    return found
        values: list[Any] = list(value.values())
    elif isinstance(value, list):
        if value and all(isinstance(v, dict) and "content" in v for v in value):
            return _leaf_text(value[-1]["content"], last)  # a conversation: what was said last
        values = value
    else:
        return None
    for v in reversed(values) if last else values:
        found = _leaf_text(v, last)
        if found:
            return found
    return None


def preview(stored: str | None, *, output: bool = False, width: int = 140) -> str | None:
    """One line of text for a run's stored input or ``output`` (JSON, possibly cut short):
    ``{"messages": [..., {"content": "where is A-1042?"}]}`` -> ``where is A-1042?``."""
    if not stored:
        return None
    try:
        text = _leaf_text(json.loads(stored), output) or stored
    except ValueError:  # cut by the query or the tracer: show it as it is
        text = stored
    return one_line(text, width)


def one_line(text: str, width: int = 140) -> str:
    """``text`` on one line (whitespace runs as one space), cut to ``width`` with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


@dataclass
class StoredSpan:
    """A span as read back. ``inputs``/``outputs`` are the stored JSON text (or None)."""

    tenant_id: str
    span_id: str
    run_id: str
    parent_id: str | None
    name: str
    kind: str
    operation: str | None
    status: str
    error_type: str | None
    error_message: str | None
    start_ns: int
    end_ns: int | None
    thread_id: str | None
    checkpoint_ns: str | None
    task_id: str | None
    step: int | None
    provider: str | None
    request_model: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cost_usd: float | None
    tool_name: str | None
    tool_call_id: str | None
    inputs: str | None
    outputs: str | None
    attributes: dict[str, Any]
    checkpoint_id: str | None = None  # the checkpoint this step produced, when known
    children: list[StoredSpan] = field(default_factory=list, repr=False)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> StoredSpan:
        """Build from a row in :data:`SPAN_COLUMNS` order."""
        values = list(row)
        values[-1] = json.loads(values[-1]) if values[-1] else {}
        return cls(*values)

    @property
    def duration_ms(self) -> float | None:
        """Wall time in milliseconds (None while running)."""
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6

    def otel_attributes(self) -> dict[str, Any]:
        """The span's attributes under their OpenTelemetry names (None values left out); a
        model call's messages also as ``gen_ai.input.messages`` / ``gen_ai.output.messages``."""
        out: dict[str, Any] = {}
        for column, name in GENAI_COLUMNS.items():
            value = getattr(self, column)
            if value is not None:
                out[name] = value
        if self.checkpoint_id is not None:
            out["sutram.checkpoint.id"] = self.checkpoint_id
        if self.error_message is not None:
            out["error.message"] = self.error_message
        if self.operation in _CHAT_OPERATIONS:
            # the GenAI conventions' chat (role + parts), so Phoenix, Langfuse and others render it
            for name, text, output in (("gen_ai.input.messages", self.inputs, False),
                                       ("gen_ai.output.messages", self.outputs, True)):
                messages = genai_json(input_messages(text) if not output else output_messages(text), output=output)
                if messages is not None:
                    out[name] = messages
        if self.inputs is not None:
            out["sutram.input"] = self.inputs
        if self.outputs is not None:
            out["sutram.output"] = self.outputs
        for key, value in self.attributes.items():
            out.setdefault(key, value if isinstance(value, (str, int, float, bool)) else json.dumps(value))
        return out


@dataclass(frozen=True)
class RunSummary:
    """One run (a root span) with totals over its spans."""

    tenant_id: str
    run_id: str
    name: str
    thread_id: str | None
    status: str
    start_ns: int
    end_ns: int | None
    spans: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None: a model call of the run has no known price (never a guess)
    errors: int
    durable_run_id: str | None = None  # the run ledger's id, when this trace executes a durable run
    durable_status: str | None = None  # that run's status in the ledger (paused, failed, completed, ...)
    input_preview: str | None = None  # the start of the run's input, as one line of text
    output_preview: str | None = None  # the start of its output (or its error)

    @property
    def state(self) -> str:
        """What the runs list says of the run: the ledger's paused, failed or cancelled for
        a durable run in one of those states (its trace may have ended "ok" at a pause), else
        the trace's status."""
        if self.durable_status in ("paused", "failed", "cancelled"):
            return self.durable_status
        return self.status

    @property
    def duration_ms(self) -> float | None:
        """Wall time of the run in milliseconds (None while running)."""
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6


# the orders a runs list can take (newest first by default), as a key over RunSummary that
# merges several tenants' lists the way each store orders one
RUN_ORDER: dict[str, Callable[[RunSummary], Any]] = {
    "newest": lambda r: -r.start_ns,
    "oldest": lambda r: r.start_ns,
    "slowest": lambda r: (r.duration_ms is None, -(r.duration_ms or 0.0), -r.start_ns),
    "fastest": lambda r: (r.duration_ms is None, r.duration_ms or 0.0, -r.start_ns),
    "tokens": lambda r: (-(r.input_tokens + r.output_tokens), -r.start_ns),
    "cost": lambda r: (-(r.cost_usd or 0.0), -r.start_ns),
}
RUN_SORTS = tuple(RUN_ORDER)


@dataclass(frozen=True)
class Totals:
    """Sums over a group of spans: a run, thread, tenant or model."""

    key: str
    runs: int
    spans: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None: a model call in the group has no known price (never a guess)
    errors: int
    latency_ms: float  # summed wall time of the runs (for ``model``: of the model calls)


class TraceStore(Protocol):
    """Where spans are kept. Every method is scoped to one tenant."""

    def write_spans(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert span rows (dicts keyed by :data:`SPAN_COLUMNS`) in one transaction and
        append an audit entry for each finished one."""

    def runs(
        self, tenant: str, *, thread_id: str | None = None, status: str | None = None,
        limit: int = 50, before_ns: int | None = None, name: str | None = None,
        since_ns: int | None = None, until_ns: int | None = None, text: str | None = None,
        model: str | None = None, sort: str = "newest", offset: int = 0,
    ) -> list[RunSummary]:
        """Runs of a tenant (or of one thread), newest first, filtered by status (a trace's
        running/ok/error, or a durable run's paused/failed/cancelled in the ledger), root
        name, start time, a text in the input, output or error, and a model used; in
        ``sort`` order (newest, oldest, slowest, fastest, tokens, cost)."""

    def run_summary(
        self, tenant: str, *, thread_id: str | None = None, status: str | None = None, name: str | None = None,
        since_ns: int | None = None, until_ns: int | None = None, text: str | None = None, model: str | None = None,
    ) -> Totals:
        """Totals over every run the filters select (``runs``: how many; ``latency_ms``: their
        summed wall time)."""

    def run_names(self, tenant: str, limit: int = 200) -> list[str]:
        """The distinct names of a tenant's runs."""

    def run_models(self, tenant: str, limit: int = 200) -> list[str]:
        """The distinct models a tenant's model calls used."""

    def stats(self, tenant: str, since_ns: int, until_ns: int, buckets: int = 24) -> Stats:
        """Runs, errors, tokens, cost and latency of the runs started in the window, per time
        bucket, model and graph (see ``sutram_core.traces.stats``)."""

    def run_spans(self, tenant: str, run_id: str) -> list[StoredSpan]:
        """Every span of a run, in start order, each with the checkpoint it produced."""

    def totals(self, tenant: str, by: str, *, thread_id: str | None = None, run_id: str | None = None) -> list[Totals]:
        """Totals grouped ``by`` "run", "thread", "tenant" or "model"."""

    def verify_audit(self, tenant: str) -> AuditReport:
        """Recompute the tenant's audit chain (see ``sutram_core.traces.audit``)."""

    def audit_tenants(self) -> list[str]:
        """The tenants that have an audit log or spans (for an operator verifying all of them)."""

    def audit_hash(self, tenant: str, seq: int) -> str | None:
        """The stored hash of one audit entry, or None (to compare with a kept head)."""


def span_tree(spans: Sequence[StoredSpan]) -> list[StoredSpan]:
    """Link ``spans`` into trees; return the roots (a span whose parent is missing is a root)."""
    by_id = {s.span_id: s for s in spans}
    roots: list[StoredSpan] = []
    for s in spans:
        s.children = []
    for s in spans:
        parent = by_id.get(s.parent_id) if s.parent_id else None
        (parent.children if parent is not None else roots).append(s)
    return roots


def total_cost(costs: Sequence[float | None]) -> float | None:
    """The sum of ``costs``; None (unknown) when one of them is."""
    return None if any(c is None for c in costs) else float(sum(c for c in costs if c is not None))
