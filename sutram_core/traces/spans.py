"""The span model: one unit of work in a run, named after the OpenTelemetry GenAI conventions.

A *run* is a tree of spans with one root; the root's id is the run id. Adapters create
:class:`Span` objects on the caller's thread and hand finished ones to a
:class:`~sutram_core.traces.tracer.Tracer`; everything else (redaction, JSON, cost, the
database) happens on the tracer's background thread.

The GenAI attribute names each column maps to are in :data:`GENAI_COLUMNS`; the OTLP
exporter and ``sutram trace --json`` use them.
"""

from __future__ import annotations

import time
import traceback
from typing import Any
from uuid import UUID

__all__ = [
    "GENAI_COLUMNS",
    "KINDS",
    "OPERATIONS",
    "STATUSES",
    "Span",
    "SpanKind",
    "SpanStatus",
]


class SpanKind:
    """What produced a span (a column of its own; not an OTel attribute)."""

    WORKFLOW = "workflow"  # a run's root, or a subgraph
    NODE = "node"  # one graph node (a LangGraph task, a LlamaIndex workflow step)
    AGENT = "agent"
    CHAIN = "chain"  # any other runnable or function
    LLM = "llm"
    TOOL = "tool"
    RETRIEVER = "retriever"
    EMBEDDING = "embedding"
    MEMORY = "memory"


class SpanStatus:
    """The states a stored span can be in."""

    RUNNING = "running"  # only roots are stored before they end
    OK = "ok"
    ERROR = "error"


KINDS = frozenset(v for k, v in vars(SpanKind).items() if not k.startswith("_"))
STATUSES = frozenset(v for k, v in vars(SpanStatus).items() if not k.startswith("_"))

# gen_ai.operation.name values (OTel GenAI semantic conventions), plus the memory ones.
OPERATIONS = frozenset({
    "invoke_workflow", "invoke_agent", "chat", "text_completion", "embeddings",
    "execute_tool", "retrieval", "create_memory", "search_memory", "update_memory",
    "delete_memory",
})

# column -> attribute name, for export and for ``sutram trace --json``
GENAI_COLUMNS: dict[str, str] = {
    "operation": "gen_ai.operation.name",
    "provider": "gen_ai.provider.name",
    "request_model": "gen_ai.request.model",
    "response_model": "gen_ai.response.model",
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "tool_name": "gen_ai.tool.name",
    "tool_call_id": "gen_ai.tool.call.id",
    "thread_id": "gen_ai.conversation.id",
    "tenant_id": "sutram.tenant.id",
    "run_id": "sutram.run.id",
    "kind": "sutram.span.kind",
    "checkpoint_ns": "sutram.checkpoint.ns",
    "task_id": "sutram.task.id",
    "step": "sutram.step",
    "cost_usd": "sutram.cost.usd",
    "error_type": "error.type",
}


class Span:
    """One span while it is being recorded.

    Built cheaply on the caller's thread: ids may be UUIDs (the writer turns them into
    strings), and ``inputs`` and ``outputs`` keep references to the framework's objects and are turned into JSON (redacted, size-capped) by the
    tracer's writer thread. The values recorded for a run are therefore assumed not to be
    mutated after the span ends, as LangGraph and LlamaIndex state is not.
    """

    __slots__ = (
        "attributes", "cache_read_tokens", "checkpoint_ns", "cost_usd", "end_ns",
        "error_message", "error_stack", "error_type", "input_tokens", "inputs", "kind", "name",
        "operation", "output_tokens", "outputs", "parent_id", "provider", "request_model",
        "response_model", "run_id", "span_id", "start_ns", "status", "step", "task_id",
        "tenant_id", "thread_id", "tool_call_id", "tool_name",
    )

    def __init__(
        self,
        span_id: str | UUID,
        run_id: str | UUID,
        parent_id: str | UUID | None,
        name: str,
        kind: str,
        tenant_id: str,
        *,
        operation: str | None = None,
        start_ns: int | None = None,
        thread_id: str | None = None,
        inputs: Any = None,
    ) -> None:
        self.span_id = span_id
        self.run_id = run_id
        self.parent_id = parent_id
        self.name = name
        self.kind = kind
        self.tenant_id = tenant_id
        self.operation = operation
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self.end_ns: int | None = None
        self.status = SpanStatus.RUNNING
        self.error_type: str | None = None
        self.error_message: str | None = None
        # the error's stack, captured without reading source files (the writer thread formats it)
        self.error_stack: traceback.TracebackException | None = None
        self.thread_id = thread_id
        self.checkpoint_ns: str | None = None
        self.task_id: str | None = None
        self.step: int | None = None
        self.provider: str | None = None
        self.request_model: str | None = None
        self.response_model: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cost_usd: float | None = None
        self.tool_name: str | None = None
        self.tool_call_id: str | None = None
        self.inputs = inputs
        self.outputs: Any = None
        self.attributes: dict[str, Any] = {}

    def finish(self, outputs: Any = None, error: BaseException | None = None) -> None:
        """Mark the span ended now, with its outputs or the error that ended it."""
        self.end_ns = time.time_ns()
        if error is None:
            self.status = SpanStatus.OK
            self.outputs = outputs
        else:
            self.status = SpanStatus.ERROR
            self.error_type = type(error).__qualname__
            self.error_message = str(error)
            self.error_stack = traceback.TracebackException.from_exception(error, lookup_lines=False)

    def abandon(self) -> None:
        """End the span as unfinished: its run ended before it reported its own end (an
        abandoned stream, a lost callback). Recorded rather than kept in memory forever."""
        self.attributes["sutram.unfinished"] = True
        self.finish(None, RuntimeError("the run ended before this span reported its end"))
        self.error_type = "SpanNotEnded"
        self.error_stack = None

    @property
    def is_root(self) -> bool:
        """True for the root span of a run."""
        return self.parent_id is None

    def __repr__(self) -> str:
        return f"Span({self.name!r}, kind={self.kind}, status={self.status}, span_id={self.span_id})"
