"""Execution observability: spans named after the OpenTelemetry GenAI conventions, a
trace store, a background writer, redaction, model prices, the audit chain and OTLP export."""

from sutram_core.traces.audit import AuditProblem, AuditReport
from sutram_core.traces.otlp import OtlpExporter
from sutram_core.traces.pricing import ModelPrice, PriceTable
from sutram_core.traces.redaction import Redactor, mask_secrets
from sutram_core.traces.spans import GENAI_COLUMNS, Span, SpanKind, SpanStatus
from sutram_core.traces.store import RunSummary, StoredSpan, Totals, TraceStore, span_tree
from sutram_core.traces.tracer import SpanExporter, Tracer, open_trace_store, shared_tracer
from sutram_core.traces.writer import WriterStats

__all__ = [
    "GENAI_COLUMNS",
    "AuditProblem",
    "AuditReport",
    "ModelPrice",
    "OtlpExporter",
    "PriceTable",
    "Redactor",
    "RunSummary",
    "Span",
    "SpanExporter",
    "SpanKind",
    "SpanStatus",
    "StoredSpan",
    "Totals",
    "TraceStore",
    "Tracer",
    "WriterStats",
    "mask_secrets",
    "open_trace_store",
    "shared_tracer",
    "span_tree",
]
