"""LlamaIndex instrumentation: span and event handlers on the root dispatcher.

>>> from sutram_adapters.llama_index import instrument
>>> instrument()                                  # doctest: +SKIP
>>> await FunctionAgent(...).run("question")      # doctest: +SKIP  -> one Sutram run

Every dispatcher span becomes a Sutram span under its parent (LlamaIndex tracks parents
in a context variable, so asyncio tasks and workflow steps nest correctly). Kinds come
from the instance: an agent workflow's ``run`` is ``invoke_agent``, other workflows
``invoke_workflow``; workflow steps are nodes; LLM ``chat``/``complete`` calls are model
spans with token usage from the end events (a streamed call ends when its stream does);
retrievers, embeddings and tools get their operations.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import threading
from collections.abc import Iterator
from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from pydantic import PrivateAttr

from sutram_adapters.llama_index._usage import llm_usage
from sutram_core.tenancy import DEFAULT_TENANT, validate_tenant
from sutram_core.traces import Span, SpanKind, Tracer, shared_tracer

__all__ = ["SutramEventHandler", "SutramInstrumentation", "SutramSpanHandler", "durable_run_scope", "instrument",
           "trace_scope"]

_scope: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "sutram_llama_index_scope", default=(None, None)
)

_CHAT = frozenset({"chat", "achat", "stream_chat", "astream_chat"})
_COMPLETE = frozenset({"complete", "acomplete", "stream_complete", "astream_complete"})
_RETRIEVE = frozenset({"retrieve", "aretrieve"})
_TOOL = frozenset({"call", "acall", "__call__"})


@contextlib.contextmanager
def trace_scope(*, thread_id: str | None = None, tenant: str | None = None) -> Iterator[None]:
    """Runs started inside this block are recorded with ``thread_id`` (as
    ``gen_ai.conversation.id``) and under ``tenant``.

    >>> with trace_scope(thread_id="user-42", tenant="acme"):   # doctest: +SKIP
    ...     await agent.run("hello")
    """
    token = _scope.set((thread_id, None if tenant is None else validate_tenant(tenant)))
    try:
        yield
    finally:
        _scope.reset(token)


_durable_run: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "sutram_llama_index_run", default=None)


@contextlib.contextmanager
def durable_run_scope(*, run_id: str, name: str, thread_id: str, tenant: str) -> Iterator[None]:
    """Runs started inside this block execute the durable run ``run_id`` of the workflow
    ``name``: their traces name both (``sutram.run_id`` and the root's name, as a durable
    LangGraph run's do), under ``thread_id`` and ``tenant``."""
    token = _durable_run.set((run_id, name))
    try:
        with trace_scope(thread_id=thread_id, tenant=tenant):
            yield
    finally:
        _durable_run.reset(token)


def _classes() -> dict[str, type]:
    from llama_index.core.agent.workflow.base_agent import BaseWorkflowAgent
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.base.llms.base import BaseLLM
    from llama_index.core.tools.types import BaseTool
    from workflows import Workflow

    return {"llm": BaseLLM, "embedding": BaseEmbedding, "retriever": BaseRetriever, "tool": BaseTool,
            "agent": BaseWorkflowAgent, "workflow": Workflow}


class _State:
    """What the span and event handlers share: the tracer and the open spans."""

    def __init__(self, tracer: Tracer, tenant: str | None) -> None:
        self.tracer = tracer
        self.tenant = tenant
        self.content = tracer.keeps_content
        self.open: dict[str, Span] = {}
        self.streaming: dict[str, Span] = {}  # model spans whose stream has not ended yet
        self.kinds: dict[tuple[type, str], tuple[str, str | None]] = {}
        self.classes = _classes()

    def classify(self, instance: Any, method: str, has_parent: bool) -> tuple[str, str | None]:
        if instance is None:
            return (SpanKind.NODE if has_parent else SpanKind.CHAIN), None
        key = (type(instance), method)
        found = self.kinds.get(key)
        if found is None:
            found = self.kinds[key] = self._classify(instance, method)
        return found

    def _classify(self, instance: Any, method: str) -> tuple[str, str | None]:
        c = self.classes
        if isinstance(instance, c["llm"]):
            if method in _CHAT:
                return SpanKind.LLM, "chat"
            if method in _COMPLETE:
                return SpanKind.LLM, "text_completion"
            return SpanKind.CHAIN, None
        if isinstance(instance, c["embedding"]) and "embedding" in method:
            return SpanKind.EMBEDDING, "embeddings"
        if isinstance(instance, c["retriever"]) and method in _RETRIEVE:
            return SpanKind.RETRIEVER, "retrieval"
        if isinstance(instance, c["tool"]) and method in _TOOL:
            return SpanKind.TOOL, "execute_tool"
        if isinstance(instance, c["agent"]) and method == "run":
            return SpanKind.AGENT, "invoke_agent"
        if isinstance(instance, c["workflow"]) and method == "run":
            return SpanKind.WORKFLOW, "invoke_workflow"
        return SpanKind.CHAIN, None

    def finish(self, span: Span, outputs: Any = None, error: BaseException | None = None) -> None:
        span.finish(outputs if self.content else None, error)
        self.tracer.end(span)
        if span.parent_id is None:
            self._close_leftovers(span)

    def _close_leftovers(self, root: Span) -> None:
        for table in (self.open, self.streaming):
            for sid, span in list(table.items()):
                if span.run_id == root.run_id:
                    table.pop(sid, None)
                    span.abandon()
                    self.tracer.end(span)


class SutramSpanHandler(BaseSpanHandler[Any]):
    """Dispatcher spans -> Sutram spans. Use :func:`instrument` to register it."""

    _state: _State = PrivateAttr()

    def __init__(self, state: _State) -> None:
        super().__init__()
        self._state = state

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex."""
        return "SutramSpanHandler"

    def span_enter(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
        parent_id: str | None = None, tags: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        """A dispatcher span began."""
        st = self._state
        parent = st.open.get(parent_id) if parent_id else None
        name = id_.partition("-")[0]
        kind, operation = st.classify(instance, name.rpartition(".")[2], parent is not None)
        inputs = None
        if st.content:
            inputs = {k: v for k, v in bound_args.arguments.items() if k != "self"}
        if parent is None:
            thread_id, tenant = _scope.get()
            span = Span(id_, id_, None, _run_name(instance, name, kind), kind, tenant or st.tenant or DEFAULT_TENANT,
                        operation=operation or "invoke_workflow", thread_id=thread_id, inputs=inputs)
            if kind in (SpanKind.CHAIN, SpanKind.NODE):
                span.kind = SpanKind.WORKFLOW
            durable = _durable_run.get()
            if durable is not None:  # the durable run this execution is of, named as the ledger names it
                span.attributes["sutram.run_id"], span.name = durable
        else:
            span = Span(id_, parent.run_id, parent.span_id, name, kind, parent.tenant_id, operation=operation,
                        thread_id=parent.thread_id, inputs=inputs)
        if kind == SpanKind.LLM:
            meta = getattr(instance, "metadata", None)
            span.request_model = getattr(meta, "model_name", None)
            span.provider = _provider(instance)
        elif kind == SpanKind.TOOL:
            span.tool_name = getattr(getattr(instance, "metadata", None), "name", None)
            if parent is not None:
                span.tool_call_id = parent.attributes.get("sutram.tool_call_id")
        elif kind == SpanKind.NODE:
            ev = bound_args.arguments.get("ev")
            tool_id = getattr(ev, "tool_id", None)
            if tool_id is not None:
                span.attributes["sutram.tool_call_id"] = tool_id
        st.open[id_] = span
        st.tracer.start(span)

    def span_exit(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
        result: Any | None = None, **kwargs: Any,
    ) -> None:
        """A dispatcher span returned (a stream keeps its model span open until it ends)."""
        st = self._state
        span = st.open.pop(id_, None)
        if span is None:
            return
        if span.kind == SpanKind.LLM and (inspect.isasyncgen(result) or inspect.isgenerator(result)):
            st.streaming[id_] = span
            return
        st.finish(span, result)

    def span_drop(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
        err: BaseException | None = None, **kwargs: Any,
    ) -> None:
        """A dispatcher span raised."""
        st = self._state
        span = st.open.pop(id_, None)
        if span is not None:
            st.finish(span, error=err or RuntimeError("span dropped"))

    # the abstract hooks of BaseSpanHandler; span_enter/exit/drop above do the work
    def new_span(self, *args: Any, **kwargs: Any) -> None:
        """Unused: :meth:`span_enter` builds the span."""
        return None

    def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
        """Unused: :meth:`span_exit` ends the span."""
        return None

    def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
        """Unused: :meth:`span_drop` ends the span."""
        return None


class SutramEventHandler(BaseEventHandler):
    """Dispatcher events -> token usage, model names, tool and retrieval facts on spans."""

    _state: _State = PrivateAttr()

    def __init__(self, state: _State) -> None:
        super().__init__()
        self._state = state

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex."""
        return "SutramEventHandler"

    def handle(self, event: Any, **kwargs: Any) -> None:
        """Attach what ``event`` says to the span it belongs to."""
        name = event.class_name()
        if name not in ("LLMChatEndEvent", "LLMCompletionEndEvent", "RetrievalEndEvent",
                        "EmbeddingEndEvent", "AgentToolCallEvent"):
            return
        st = self._state
        sid = event.span_id
        streamed = st.streaming.pop(sid, None) if sid else None
        span = streamed or (st.open.get(sid) if sid else None)
        if span is None:
            return
        if name in ("LLMChatEndEvent", "LLMCompletionEndEvent"):
            response = getattr(event, "response", None)
            inp, out, cached, model = llm_usage(response)
            span.input_tokens, span.output_tokens, span.cache_read_tokens = inp, out, cached
            span.response_model = model or span.request_model
            if streamed is not None:
                st.finish(span, response)
        elif name == "RetrievalEndEvent":
            span.attributes["sutram.retrieval.documents"] = len(getattr(event, "nodes", None) or ())
        elif name == "EmbeddingEndEvent":
            span.attributes["sutram.embedding.count"] = len(getattr(event, "embeddings", None) or ())
        else:
            span.attributes["gen_ai.tool.name"] = getattr(getattr(event, "tool", None), "name", None)


def _run_name(instance: Any, method: str, kind: str) -> str:
    """A run's name: an agent's own name (``FunctionAgent(name="orders")``), a workflow's
    class (``AgentWorkflow``, the user's ``Workflow`` subclass), else the method."""
    if kind == SpanKind.AGENT and isinstance(getattr(instance, "name", None), str) and instance.name:
        return str(instance.name)
    if kind == SpanKind.WORKFLOW and instance is not None:
        return type(instance).__name__
    return method


def _provider(instance: Any) -> str | None:
    try:
        return str(instance.class_name())
    except Exception:
        return type(instance).__name__


class SutramInstrumentation:
    """The handlers :func:`instrument` registered; :meth:`uninstrument` removes them."""

    def __init__(self, tracer: Tracer, tenant: str | None, dispatcher: Any) -> None:
        self.tracer = tracer
        self._state = _State(tracer, tenant)
        self.span_handler = SutramSpanHandler(self._state)
        self.event_handler = SutramEventHandler(self._state)
        self._dispatcher = dispatcher
        dispatcher.add_span_handler(self.span_handler)
        dispatcher.add_event_handler(self.event_handler)

    def active_span(self, span_id: str | None) -> Span | None:
        """The open Sutram span for a dispatcher span id, if this instrumentation has it."""
        return self._state.open.get(span_id) if span_id else None

    @property
    def open_spans(self) -> int:
        """Spans started and not ended (0 between runs)."""
        return len(self._state.open) + len(self._state.streaming)

    def flush(self) -> None:
        """Write every span recorded so far."""
        self.tracer.flush()

    def uninstrument(self) -> None:
        """Remove the handlers from the dispatcher and flush."""
        d = self._dispatcher
        d.span_handlers = [h for h in d.span_handlers if h is not self.span_handler]
        d.event_handlers = [h for h in d.event_handlers if h is not self.event_handler]
        with _LOCK:
            if _ACTIVE.get(id(d)) is self:
                del _ACTIVE[id(d)]
        self.tracer.flush()


_ACTIVE: dict[int, SutramInstrumentation] = {}
_LOCK = threading.Lock()


def instrument(
    url: str | None = None, *, tenant: str | None = None, tracer: Tracer | None = None, dispatcher: Any = None,
) -> SutramInstrumentation:
    """Record every LlamaIndex run as a Sutram trace (one call, at start-up).

    Registers Sutram's span and event handlers on the root dispatcher (or ``dispatcher``).
    Calling it again replaces the previous registration, so spans are never doubled.
    ``url`` defaults to ``SUTRAM_URL`` (else the embedded SQLite file); ``tenant`` is
    the default tenant of runs (:func:`trace_scope` overrides it per block).
    """
    d = dispatcher if dispatcher is not None else get_dispatcher()
    with _LOCK:
        previous = _ACTIVE.pop(id(d), None)
    if previous is not None:
        previous.uninstrument()
    inst = SutramInstrumentation(tracer or shared_tracer(url), None if tenant is None else validate_tenant(tenant), d)
    with _LOCK:
        _ACTIVE[id(d)] = inst
    return inst


def current_instrumentation(dispatcher: Any = None) -> SutramInstrumentation | None:
    """The instrumentation :func:`instrument` registered on the (root) dispatcher, if any."""
    d = dispatcher if dispatcher is not None else get_dispatcher()
    return _ACTIVE.get(id(d))
