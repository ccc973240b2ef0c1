"""``SutramLlamaCallbackHandler``: for apps still on ``Settings.callback_manager``.

LlamaIndex's legacy callback events only cover LLM, embedding, retrieval, query and
function-call events; newer agents (``FunctionAgent``, ``AgentWorkflow``) send their LLM
calls there with no trace around them and nothing about agent or tool steps. So by
default this handler also turns on :func:`~sutram_adapters.llama_index.instrument`,
which records the whole run (agent, steps, tools, models), and records legacy events
only where no instrumented span covers them. With ``instrumentation=False`` it records
the legacy events alone, nested by their parent event ids under one run per trace.

>>> from llama_index.core import Settings
>>> from llama_index.core.callbacks import CallbackManager
>>> Settings.callback_manager = CallbackManager([SutramLlamaCallbackHandler()])  # doctest: +SKIP
"""

from __future__ import annotations

import contextvars
import uuid
from typing import Any

from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import BASE_TRACE_EVENT, CBEventType, EventPayload
from llama_index_instrumentation.span import active_span_id

from sutram_adapters.llama_index._usage import llm_usage
from sutram_adapters.llama_index.instrumentation import (
    SutramInstrumentation,
    current_instrumentation,
    instrument,
)
from sutram_core.tenancy import DEFAULT_TENANT, validate_tenant
from sutram_core.traces import Span, SpanKind, Tracer, shared_tracer

__all__ = ["SutramLlamaCallbackHandler"]

_KINDS: dict[CBEventType, tuple[str, str | None]] = {
    CBEventType.LLM: (SpanKind.LLM, "chat"),
    CBEventType.EMBEDDING: (SpanKind.EMBEDDING, "embeddings"),
    CBEventType.RETRIEVE: (SpanKind.RETRIEVER, "retrieval"),
    CBEventType.FUNCTION_CALL: (SpanKind.TOOL, "execute_tool"),
    CBEventType.AGENT_STEP: (SpanKind.AGENT, "invoke_agent"),
}


class SutramLlamaCallbackHandler(BaseCallbackHandler):
    """Legacy LlamaIndex callback handler writing Sutram traces (see the module docstring)."""

    def __init__(
        self, url: str | None = None, *, tenant: str | None = None, tracer: Tracer | None = None,
        instrumentation: bool = True,
    ) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.tracer = tracer or shared_tracer(url)
        self.tenant = None if tenant is None else validate_tenant(tenant)
        self.instrumentation: SutramInstrumentation | None = None
        if instrumentation:
            current = current_instrumentation()
            same = current is not None and current.tracer is self.tracer
            self.instrumentation = current if same else instrument(tenant=tenant, tracer=self.tracer)
        self._open: dict[str, Span] = {}
        self._root: contextvars.ContextVar[Span | None] = contextvars.ContextVar(f"sutram_trace_{id(self)}", default=None)

    def _covered(self) -> Span | None:
        """The instrumented span enclosing this point, if instrumentation records it."""
        if self.instrumentation is None:
            return None
        return self.instrumentation.active_span(active_span_id.get())

    # -- traces ----------------------------------------------------------------------

    def start_trace(self, trace_id: str | None = None) -> None:
        """A legacy trace (one query, chat or index build) begins: one run."""
        if self._root.get() is not None or self._covered() is not None:
            return
        if self.instrumentation is not None:
            return  # the instrumented spans make the run
        sid = str(uuid.uuid4())
        root = Span(sid, sid, None, trace_id or "trace", SpanKind.WORKFLOW, self.tenant or DEFAULT_TENANT,
                    operation="invoke_workflow")
        self._root.set(root)
        self.tracer.start(root)

    def end_trace(self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None) -> None:
        """The legacy trace ended."""
        root = self._root.get()
        if root is not None and root.name == (trace_id or "trace"):
            self._root.set(None)
            root.finish()
            self.tracer.end(root)

    # -- events ----------------------------------------------------------------------

    def on_event_start(
        self, event_type: CBEventType, payload: dict[str, Any] | None = None, event_id: str = "",
        parent_id: str = "", **kwargs: Any,
    ) -> str:
        """A legacy event began."""
        event_id = event_id or str(uuid.uuid4())
        payload = payload or {}
        parent = self._open.get(parent_id) if parent_id and parent_id != BASE_TRACE_EVENT else None
        if parent is None:
            if self._covered() is not None:
                return event_id
            parent = self._root.get()
        if event_type == CBEventType.EXCEPTION:
            if parent is not None:
                exc = payload.get(EventPayload.EXCEPTION)
                parent.attributes["sutram.exception"] = f"{type(exc).__name__}: {exc}"
            return event_id
        kind, operation = _KINDS.get(event_type, (SpanKind.CHAIN, None))
        inputs = None
        if self.tracer.keeps_content:
            inputs = {k.value if isinstance(k, EventPayload) else str(k): v for k, v in payload.items()
                      if k != EventPayload.SERIALIZED}
        if parent is None:
            span = Span(event_id, event_id, None, event_type.value, kind, self.tenant or DEFAULT_TENANT,
                        operation=operation or "invoke_workflow", inputs=inputs)
        else:
            span = Span(event_id, parent.run_id, parent.span_id, event_type.value, kind, parent.tenant_id,
                        operation=operation, thread_id=parent.thread_id, inputs=inputs)
        serialized = payload.get(EventPayload.SERIALIZED) or {}
        if kind == SpanKind.LLM:
            span.request_model = serialized.get("model") or serialized.get("model_name")
            span.provider = serialized.get("class_name")
            if EventPayload.PROMPT in payload and EventPayload.MESSAGES not in payload:
                span.operation = "text_completion"
        elif kind == SpanKind.TOOL:
            tool = payload.get(EventPayload.TOOL)
            span.tool_name = getattr(tool, "name", None)
            span.name = span.tool_name or span.name
        self._open[event_id] = span
        self.tracer.start(span)
        return event_id

    def on_event_end(
        self, event_type: CBEventType, payload: dict[str, Any] | None = None, event_id: str = "", **kwargs: Any,
    ) -> None:
        """A legacy event ended."""
        span = self._open.pop(event_id, None)
        if span is None:
            return
        payload = payload or {}
        outputs: Any = None
        if span.kind == SpanKind.LLM:
            response = payload.get(EventPayload.RESPONSE) or payload.get(EventPayload.COMPLETION)
            span.input_tokens, span.output_tokens, span.cache_read_tokens, model = llm_usage(response)
            span.response_model = model or span.request_model
            outputs = response
        elif span.kind == SpanKind.RETRIEVER:
            nodes = payload.get(EventPayload.NODES) or ()
            span.attributes["sutram.retrieval.documents"] = len(nodes)
            outputs = nodes
        elif span.kind == SpanKind.TOOL:
            outputs = payload.get(EventPayload.FUNCTION_OUTPUT)
        else:
            outputs = payload.get(EventPayload.RESPONSE) or payload.get(EventPayload.CHUNKS)
        error = payload.get(EventPayload.EXCEPTION)
        span.finish(outputs if self.tracer.keeps_content else None, error if isinstance(error, BaseException) else None)
        self.tracer.end(span)

    def flush(self) -> None:
        """Write every span recorded so far."""
        self.tracer.flush()
