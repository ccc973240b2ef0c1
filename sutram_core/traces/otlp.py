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
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sutram_core.errors import ConfigurationError, MissingDependencyError
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
    never fail the write of the spans to Sutram's database, which keeps every span:
    ``sutram export --otlp`` sends them again later, and the collector sees the same ids.

    A collector that does not answer is not waited for on every batch: after a failed
    export, batches are counted as failed without a try for ``retry_after`` seconds, and
    the next try first checks in a second that something listens on the collector's port
    (the OTel SDK would otherwise retry a refused connection for ``timeout`` seconds).
    """

    def __init__(self, endpoint: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0,
                 service_name: str = "sutram", retry_after: float = 5.0) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        except ImportError as exc:
            raise MissingDependencyError("opentelemetry-exporter-otlp-proto-http", "otel") from exc
        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"OTLP endpoint {endpoint!r} is not an http(s) URL: give the collector's "
                                     f"OTLP/HTTP address with its scheme, e.g. http://localhost:4318")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ConfigurationError(f"OTLP endpoint {endpoint!r} has a bad port: {exc}") from exc
        self.endpoint = url
        self._address = (parts.hostname, port)
        self._timeout = timeout
        self._retry_after = retry_after
        self._down_until = 0.0
        self._checked = False  # True once the port answered since the last failure
        self.last_error: str | None = None
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
        if time.monotonic() < self._down_until or not self._reachable():
            self.failed += len(batch)
            return
        try:
            result = self._exporter.export(batch)
            error = None if result == SpanExportResult.SUCCESS else "the collector refused the batch or timed out"
        except Exception as exc:  # the collector's trouble must not become the app's
            error = str(exc) or type(exc).__name__
        if error is None:
            if self.last_error is not None:
                log.warning("sutram: OTLP export to %s works again", self.endpoint)
            self.exported += len(batch)
            self.last_error = None
        else:
            self.failed += len(batch)
            self._went_down(error)

    def reachable(self) -> bool:
        """Whether something accepts connections on the collector's port (one try, at most a second)."""
        try:
            with socket.create_connection(self._address, timeout=min(self._timeout, 1.0)):
                return True
        except OSError as exc:
            self.last_error = f"cannot connect to {self._address[0]}:{self._address[1]}: {exc.strerror or exc}"
            return False

    def _reachable(self) -> bool:
        if self._checked:
            return True
        if not self.reachable():
            self._went_down(self.last_error or "unreachable")
            return False
        self._checked = True
        return True

    def _went_down(self, error: str) -> None:
        if self._down_until == 0.0 or self.last_error != error:
            log.warning("sutram: OTLP export to %s failed (%s); the spans stay in Sutram's database "
                        "(send them later with `sutram export --otlp`); next try in %g s",
                        self.endpoint, error, self._retry_after)
        self.last_error = error
        self._checked = False
        self._down_until = time.monotonic() + self._retry_after

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
