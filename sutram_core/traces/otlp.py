"""OTLP export (extra ``otel``): stored spans go to any OpenTelemetry collector over
OTLP/HTTP (Jaeger, Tempo, Langfuse, Phoenix, an OTel Collector).

Live, as spans are written::

    tracer = Tracer.from_url(url, exporters=[OtlpExporter("http://collector:4318")])

or afterwards, for stored runs: ``sutram export --otlp http://collector:4318``.

A run becomes one OTel trace: its trace id and every span id are derived from Sutram's
ids (SHA-256), so exporting the same run twice gives the same ids and parents. Span
names follow the GenAI conventions (``chat gpt-4o``, ``execute_tool lookup_order``,
``invoke_agent orders``); attributes are those of :meth:`StoredSpan.otel_attributes`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from sutram_core.errors import MissingDependencyError
from sutram_core.traces.spans import SpanStatus
from sutram_core.traces.store import StoredSpan

__all__ = ["OtlpExporter", "otel_span_name", "span_id_of", "trace_id_of"]

log = logging.getLogger("sutram.traces")
_MODEL_OPS = frozenset({"chat", "text_completion", "embeddings"})


def trace_id_of(tenant: str, run_id: str) -> int:
    """The 128-bit OTel trace id of a run."""
    return int.from_bytes(hashlib.sha256(f"{tenant}\0{run_id}".encode()).digest()[:16], "big") or 1


def span_id_of(tenant: str, span_id: str) -> int:
    """The 64-bit OTel span id of a span."""
    return int.from_bytes(hashlib.sha256(f"{tenant}\0{span_id}".encode()).digest()[:8], "big") or 1


def otel_span_name(span: StoredSpan) -> str:
    """The span name the GenAI semantic conventions ask for."""
    op = span.operation
    if op in _MODEL_OPS and (span.request_model or span.response_model):
        return f"{op} {span.request_model or span.response_model}"
    if op == "execute_tool" and span.tool_name:
        return f"execute_tool {span.tool_name}"
    if op in ("invoke_agent", "invoke_workflow"):
        return f"{op} {span.name}"
    return span.name


class OtlpExporter:
    """Sends stored spans to an OTLP/HTTP endpoint through the OpenTelemetry SDK.

    ``endpoint`` is the collector's base URL (``http://host:4318``) or its full traces
    URL (``.../v1/traces``). Export failures are logged and counted in ``failed``; they
    never fail the write of the spans to Sutram's database.
    """

    def __init__(self, endpoint: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0,
                 service_name: str = "sutram") -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        except ImportError as exc:
            raise MissingDependencyError("opentelemetry-exporter-otlp-proto-http", "otel") from exc
        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        self.endpoint = url
        self._exporter = OTLPSpanExporter(endpoint=url, headers=headers, timeout=timeout)
        self._resource = Resource.create({"service.name": service_name})
        self._scope = InstrumentationScope("sutram", _version())
        self.exported = 0
        self.failed = 0

    def export(self, spans: Sequence[StoredSpan]) -> None:
        """Send ``spans`` (finished ones; running roots are skipped)."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        batch = [self._convert(s) for s in spans if s.status != SpanStatus.RUNNING]
        if not batch:
            return
        try:
            result = self._exporter.export(batch)
        except Exception as exc:  # the collector's trouble must not become the app's
            result = None
            log.warning("sutram: OTLP export to %s failed: %s", self.endpoint, exc)
        if result == SpanExportResult.SUCCESS:
            self.exported += len(batch)
        else:
            self.failed += len(batch)

    def shutdown(self) -> None:
        """Release the HTTP session."""
        self._exporter.shutdown()  # type: ignore[no-untyped-call]

    def _convert(self, span: StoredSpan) -> Any:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        trace_id = trace_id_of(span.tenant_id, span.run_id)
        flags = TraceFlags(TraceFlags.SAMPLED)
        context = SpanContext(trace_id, span_id_of(span.tenant_id, span.span_id), is_remote=False, trace_flags=flags)
        parent = None
        if span.parent_id is not None:
            parent = SpanContext(trace_id, span_id_of(span.tenant_id, span.parent_id), is_remote=False,
                                 trace_flags=flags)
        kind = SpanKind.CLIENT if span.operation in _MODEL_OPS else SpanKind.INTERNAL
        status = (Status(StatusCode.ERROR, span.error_message or span.error_type) if span.status == SpanStatus.ERROR
                  else Status(StatusCode.OK))
        return ReadableSpan(
            otel_span_name(span), context=context, parent=parent, resource=self._resource,
            attributes=span.otel_attributes(), kind=kind, status=status, start_time=span.start_ns,
            end_time=span.end_ns, instrumentation_scope=self._scope,
        )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sutram")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
