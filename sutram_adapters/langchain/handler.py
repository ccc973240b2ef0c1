"""``SutramCallbackHandler``: LangChain and LangGraph runs recorded as Sutram traces.

Add it as a callback and every invocation becomes one run, a tree of spans:

>>> from sutram_adapters.langchain import SutramCallbackHandler
>>> handler = SutramCallbackHandler()                     # doctest: +SKIP
>>> graph.invoke(inputs, {"callbacks": [handler]})         # doctest: +SKIP

Nesting follows the ``run_id``/``parent_run_id`` pair LangChain passes with every event,
never a per-handler stack or a context variable, so one handler shared by concurrent
invocations, parallel branches, ``Send`` fan-out and worker threads all nest correctly.

The handler runs inline (``run_inline = True``): under asyncio LangChain calls it
directly instead of hopping to a thread pool, and each callback only builds or finishes
a small :class:`~sutram_core.traces.Span` and queues it; the database write happens on
the tracer's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

from langchain_core.callbacks import BaseCallbackHandler

from sutram_core.tenancy import DEFAULT_TENANT, validate_tenant
from sutram_core.traces import Span, SpanKind, Tracer, shared_tracer

__all__ = ["SutramCallbackHandler"]

log = logging.getLogger("sutram.traces")
_HIDDEN = "langsmith:hidden"
# LangGraph control flow travels as exceptions; a node that interrupts has not failed.
_CONTROL_FLOW = frozenset({"GraphBubbleUp", "GraphInterrupt", "NodeInterrupt", "ParentCommand"})


def _is_control_flow(error: BaseException) -> bool:
    return any(cls.__name__ in _CONTROL_FLOW for cls in type(error).__mro__)


def _name(serialized: dict[str, Any] | None, kwargs: dict[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if name:
        return str(name)
    if serialized:
        if serialized.get("name"):
            return str(serialized["name"])
        ids = serialized.get("id")
        if ids:
            return str(ids[-1])
    return default


def _usage_of(response: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Token usage and response model of an ``LLMResult``."""
    usage: dict[str, Any] | None = None
    model: str | None = None
    for candidates in getattr(response, "generations", None) or ():
        if not candidates:
            continue
        message = getattr(candidates[0], "message", None)
        if message is None:
            continue
        meta = getattr(message, "response_metadata", None) or {}
        model = model or meta.get("model_name") or meta.get("model")
        um = getattr(message, "usage_metadata", None)
        if um:
            usage = _add_usage(usage, um)
    llm_output = getattr(response, "llm_output", None) or {}
    if usage is None:
        tu = llm_output.get("token_usage") or llm_output.get("usage")
        if isinstance(tu, dict) and tu:
            usage = {
                "input_tokens": tu.get("prompt_tokens", tu.get("input_tokens")),
                "output_tokens": tu.get("completion_tokens", tu.get("output_tokens")),
            }
    model = model or llm_output.get("model_name") or llm_output.get("model")
    return usage, model


def _replayed(response: Any) -> bool:
    """Whether an ``LLMResult`` came from Sutram's call journal (see ``JournalCache``)."""
    return any((getattr(g, "generation_info", None) or {}).get("sutram_replayed")
               for gens in getattr(response, "generations", None) or () for g in gens)


def _add_usage(total: dict[str, Any] | None, usage: Any) -> dict[str, Any]:
    out = dict(total or {"input_tokens": 0, "output_tokens": 0, "cache_read": 0})
    out["input_tokens"] = (out.get("input_tokens") or 0) + (usage.get("input_tokens") or 0)
    out["output_tokens"] = (out.get("output_tokens") or 0) + (usage.get("output_tokens") or 0)
    details = usage.get("input_token_details") or {}
    out["cache_read"] = (out.get("cache_read") or 0) + (details.get("cache_read") or 0)
    return out


class SutramCallbackHandler(BaseCallbackHandler):
    """Records LangChain/LangGraph runs as Sutram traces (see the module docstring).

    ``SutramCallbackHandler()`` writes to the database ``SUTRAM_URL`` names (default: the
    embedded SQLite file) through a tracer shared by every handler with default options.
    ``url`` and ``tenant`` name the database and bind the tenant (otherwise the tenant is
    ``metadata["tenant_id"]`` of the invocation's config, else ``"default"``; LangChain
    does not pass ``configurable`` to callbacks). ``content``,
    ``redact`` and ``mask`` give this handler its own tracer with those privacy options
    (see :class:`sutram_core.traces.Redactor`); ``tracer`` passes one explicitly.
    """

    run_inline = True
    raise_error = False

    def __init__(
        self,
        url: str | None = None,
        *,
        tenant: str | None = None,
        tracer: Tracer | None = None,
        content: bool | None = None,
        redact: Callable[[Any], Any] | None = None,
        mask: bool = True,
        include_hidden: bool = False,
    ) -> None:
        super().__init__()
        self.tenant = None if tenant is None else validate_tenant(tenant)
        self._own_tracer = tracer is None and (content is not None or redact is not None or not mask)
        if tracer is not None:
            self.tracer = tracer
        elif self._own_tracer:
            self.tracer = Tracer.from_url(url, content=content, redact=redact, mask=mask)
        else:
            self.tracer = shared_tracer(url)
        self._content = self.tracer.keeps_content
        self._include_hidden = include_hidden
        # keyed by ``run_id.int``: hashing an int costs a fraction of hashing a UUID
        self._open: dict[int, Span] = {}
        self._hidden: dict[int, Span | None] = {}  # a hidden run -> the span its children attach to
        self._streamed: dict[int, dict[str, Any]] = {}  # usage reported by streamed chunks

    # -- lifecycle -------------------------------------------------------------------

    def flush(self) -> None:
        """Write every span recorded so far before returning."""
        self.tracer.flush()

    async def aflush(self) -> None:
        """Async twin of :meth:`flush`."""
        await self.tracer.aflush()

    def close(self) -> None:
        """Flush; close the tracer if this handler made its own."""
        if self._own_tracer:
            self.tracer.close()
        else:
            self.tracer.flush()

    def __enter__(self) -> SutramCallbackHandler:
        return self

    def __exit__(self, *exc: object) -> None:
        """``with SutramCallbackHandler() as handler:``: every span written on leaving."""
        self.close()

    @property
    def open_spans(self) -> int:
        """Spans started and not yet ended (0 between invocations)."""
        return len(self._open) + len(self._hidden)

    def mark_run(self, sutram_run_id: str, attributes: dict[str, Any]) -> int:
        """Set ``attributes`` on the open trace root of the durable run ``sutram_run_id``
        (what the durable runner learns mid-run, e.g. that a model call went past the run's
        budget); returns how many roots were marked."""
        marked = 0
        for span in list(self._open.values()):
            if span.parent_id is None and span.attributes.get("sutram.run_id") == sutram_run_id:
                span.attributes.update(attributes)
                marked += 1
        return marked

    # -- span bookkeeping ------------------------------------------------------------

    def _start(
        self, run_id: UUID, parent_run_id: UUID | None, name: str, kind: str, operation: str | None,
        tags: list[str] | None, metadata: dict[str, Any] | None, inputs: Any,
    ) -> Span | None:
        parent: Span | None = None
        if parent_run_id is not None:
            parent = self._open.get(parent_run_id.int)
            if parent is None:
                parent = self._hidden.get(parent_run_id.int)
        attempt = 0
        if tags:
            if _HIDDEN in tags and not self._include_hidden:
                self._hidden[run_id.int] = parent
                return None
            attempt = _retry_attempt(tags)
        md = metadata or {}
        if parent is None:
            if run_id.int in self._open:
                # langfuse 3491: the same config run_id passed to concurrent invocations.
                # Their events cannot be told apart by any handler; say so once per run.
                log.warning("sutram: run id %s is already running; give each invocation its own run_id "
                            "(the spans of both invocations will mix)", run_id)
            tenant = self.tenant or self._tenant_of(md)
            span = Span(run_id, run_id, None, name, kind, tenant, operation=operation or "invoke_workflow",
                        thread_id=_str_or_none(md.get("thread_id")),
                        inputs=inputs if self._content else None)
            if kind == SpanKind.CHAIN:
                span.kind = SpanKind.WORKFLOW
            if md.get("sutram_run_id"):
                span.attributes["sutram.run_id"] = str(md["sutram_run_id"])  # the durable run it executes
        else:
            span = Span(run_id, parent.run_id, parent.span_id, name, kind, parent.tenant_id, operation=operation,
                        thread_id=parent.thread_id or _str_or_none(md.get("thread_id")),
                        inputs=inputs if self._content else None)
        node = md.get("langgraph_node")
        if node is not None:
            span.step = md.get("langgraph_step")
            # "node:task|child:task": a graph node's checkpoint lives in the namespace
            # before the last segment; a new task id means a new node (also in a subgraph)
            ns = str(md.get("langgraph_checkpoint_ns") or "")
            head, _, last = ns.rpartition("|")
            task_id = last.partition(":")[2] or None
            if kind == SpanKind.CHAIN and name == node and (parent is None or parent.task_id != task_id):
                span.kind = SpanKind.NODE
                span.checkpoint_ns, span.task_id = head, task_id
            elif parent is not None:
                span.checkpoint_ns, span.task_id = parent.checkpoint_ns, parent.task_id
        if attempt:
            span.attributes["sutram.retry.attempt"] = attempt
            if parent is not None and attempt > 1:
                parent.attributes["sutram.retries"] = attempt - 1
        self._open[run_id.int] = span
        if parent is None:
            self.tracer.start(span)
        return span

    def _tenant_of(self, md: dict[str, Any]) -> str:
        requested = md.get("tenant_id")
        if requested is None:
            return DEFAULT_TENANT
        try:
            return validate_tenant(requested)
        except Exception:
            log.warning("sutram: invalid tenant_id %r in run metadata; recording under %r", requested, DEFAULT_TENANT)
            return DEFAULT_TENANT

    def _end(self, run_id: UUID, outputs: Any = None, error: BaseException | None = None) -> Span | None:
        span = self._open.pop(run_id.int, None)
        if span is None:
            self._hidden.pop(run_id.int, None)
            return None
        if error is not None and _is_control_flow(error):
            span.attributes["sutram.interrupted"] = type(error).__name__
            error = None
        if error is not None and "sutram.retry.attempt" in span.attributes and span.parent_id is not None:
            parent = self._open.get(span.parent_id.int)  # type: ignore[union-attr]
            if parent is not None:
                parent.attributes["sutram.retry.last_error"] = f"{type(error).__name__}: {error}"
        span.finish(outputs if self._content else None, error)
        self.tracer.end(span)
        if span.parent_id is None and self._open:
            self._close_leftovers(span)
        return span

    def _close_leftovers(self, root: Span) -> None:
        for rid, span in list(self._open.items()):
            if span.run_id == root.run_id:
                self._open.pop(rid, None)
                span.abandon()
                self.tracer.end(span)
        for rid, parent in list(self._hidden.items()):
            if parent is not None and parent.run_id == root.run_id:
                self._hidden.pop(rid, None)

    # -- chains and graph nodes ------------------------------------------------------

    def on_chain_start(
        self, serialized: dict[str, Any], inputs: dict[str, Any], *, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        """A chain, graph or graph node started."""
        self._start(run_id, parent_run_id, _name(serialized, kwargs, "chain"), SpanKind.CHAIN, None,
                    tags, metadata, inputs)

    def on_chain_end(self, outputs: dict[str, Any], *, run_id: UUID, **kwargs: Any) -> None:
        """A chain ended."""
        self._end(run_id, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A chain raised."""
        self._end(run_id, error=error)

    # -- models ----------------------------------------------------------------------

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[Any]], *, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        """A chat model call started."""
        self._model_start("chat", serialized, messages, run_id, parent_run_id, tags, metadata, kwargs)

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        """A completion model call started."""
        self._model_start("text_completion", serialized, prompts, run_id, parent_run_id, tags, metadata, kwargs)

    def _model_start(
        self, operation: str, serialized: dict[str, Any], inputs: Any, run_id: UUID,
        parent_run_id: UUID | None, tags: list[str] | None, metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        span = self._start(run_id, parent_run_id, _name(serialized, kwargs, operation), SpanKind.LLM, operation,
                           tags, metadata, inputs)
        if span is None:
            return
        md = metadata or {}
        params = kwargs.get("invocation_params") or {}
        span.provider = md.get("ls_provider") or params.get("_type")
        span.request_model = md.get("ls_model_name") or params.get("model") or params.get("model_name")

    def on_llm_new_token(self, token: str, *, chunk: Any = None, run_id: UUID, **kwargs: Any) -> None:
        """A streamed chunk: keep the usage it reports, in case the final result drops it."""
        message = getattr(chunk, "message", None)
        usage = getattr(message, "usage_metadata", None) if message is not None else None
        if usage:
            self._streamed[run_id.int] = _add_usage(self._streamed.get(run_id.int), usage)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """A model call ended: tokens, response model, cost."""
        streamed = self._streamed.pop(run_id.int, None)
        span = self._open.get(run_id.int)
        if span is not None:
            usage, model = _usage_of(response)
            usage = usage or streamed
            if usage and _replayed(response):
                # answered from Sutram's call journal: nothing was paid, so no tokens or cost
                # count here; what the original call used is kept for reference
                span.attributes["sutram.replayed"] = True
                span.attributes["sutram.replayed_tokens"] = (usage.get("input_tokens") or 0) + (
                    usage.get("output_tokens") or 0)
                span.cost_usd = 0.0  # known: nothing (not unknown, which would make the run's cost unknown)
            elif usage:
                span.input_tokens = usage.get("input_tokens")
                span.output_tokens = usage.get("output_tokens")
                span.cache_read_tokens = usage.get("cache_read") or None
            span.response_model = model or span.request_model
        outputs = None
        if self._content:
            outputs = [[getattr(g, "message", None) or getattr(g, "text", None) for g in gens]
                       for gens in getattr(response, "generations", None) or ()]
        self._end(run_id, outputs)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A model call raised."""
        self._streamed.pop(run_id.int, None)
        self._end(run_id, error=error)

    # -- tools and retrievers --------------------------------------------------------

    def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, *, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        """A tool call started."""
        name = _name(serialized, kwargs, "tool")
        span = self._start(run_id, parent_run_id, name, SpanKind.TOOL, "execute_tool", tags, metadata,
                           inputs if inputs is not None else input_str)
        if span is not None:
            span.tool_name = name
            span.tool_call_id = kwargs.get("tool_call_id")

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """A tool call ended."""
        span = self._open.get(run_id.int)
        if span is not None and span.tool_call_id is None:
            span.tool_call_id = getattr(output, "tool_call_id", None)
        self._end(run_id, output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A tool call raised."""
        self._end(run_id, error=error)

    # -- memory (called by SutramStore, not by LangChain) -----------------------------

    def start_memory_op(self, parent_run_id: UUID, operation: str, name: str, inputs: Any) -> UUID | None:
        """Open a memory span (``operation``: search_memory, update_memory, delete_memory)
        under the run ``parent_run_id``; return its id, or None when that run is not traced here."""
        if parent_run_id.int not in self._open and parent_run_id.int not in self._hidden:
            return None
        run_id = uuid4()
        self._start(run_id, parent_run_id, name, SpanKind.MEMORY, operation, None, None, inputs)
        return run_id

    def trace_of(self, run_id: UUID) -> str | None:
        """The id of the trace (the run at its root) that the open span ``run_id`` belongs
        to; None when no such span is open here."""
        span = self._open.get(run_id.int)
        return None if span is None else str(span.run_id)

    def end_memory_op(self, run_id: UUID, outputs: Any = None, error: BaseException | None = None,
                      attributes: dict[str, Any] | None = None) -> None:
        """Close a span opened by :meth:`start_memory_op`."""
        span = self._open.get(run_id.int)
        if span is not None and attributes:
            span.attributes.update(attributes)
        self._end(run_id, outputs, error)

    def on_retriever_start(
        self, serialized: dict[str, Any], query: str, *, run_id: UUID, parent_run_id: UUID | None = None,
        tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        """A retrieval started."""
        self._start(run_id, parent_run_id, _name(serialized, kwargs, "retriever"), SpanKind.RETRIEVER,
                    "retrieval", tags, metadata, query)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        """A retrieval ended."""
        span = self._open.get(run_id.int)
        if span is not None:
            span.attributes["sutram.retrieval.documents"] = len(documents)
        self._end(run_id, documents)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """A retrieval raised."""
        self._end(run_id, error=error)

    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """A model client reported a retry (LangChain's RunnableRetry is counted from its
        ``retry:attempt:N`` child runs instead)."""
        span = self._open.get(run_id.int)
        if span is None:
            return
        span.attributes["sutram.retries"] = span.attributes.get("sutram.retries", 0) + 1
        outcome = getattr(retry_state, "outcome", None)
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            span.attributes["sutram.retry.last_error"] = f"{type(exc).__name__}: {exc}"


def _retry_attempt(tags: list[str]) -> int:
    for tag in tags:
        if tag.startswith("retry:attempt:"):
            try:
                return int(tag[14:])
            except ValueError:
                return 0
    return 0


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
