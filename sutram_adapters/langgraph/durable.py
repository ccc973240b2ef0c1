"""``durable(graph)``: run an existing compiled LangGraph graph durably.

    runner = durable(compiled_graph, url="sqlite:///app.db", tenant="acme")
    result = runner.invoke({"messages": [...]}, thread_id="t1")
    runner.recover()        # resumes the runs whose worker died
    await runner.arecover() # the same from async code (async nodes need it, or recover() runs
                            # them in an event loop of its own); runner.poll() as an asyncio task

The runner wires the pieces; the graph's code does not change:

- checkpoints go to :class:`SutramSaver` (the graph is copied with it as checkpointer);
- every run is recorded in the run ledger, owned through a lease that a heartbeat thread
  renews; a run whose lease expired (its worker died) is found and resumed from its latest
  checkpoint by :meth:`DurableRunner.recover`, by exactly one caller;
- each node task runs inside a :class:`~sutram_core.runs.CallScope`, so LangChain model
  calls (through :class:`~sutram_adapters.langchain.JournalCache`, installed once per
  process) and ``@durable_step`` functions made before a crash are answered from the
  journal when the node runs again, instead of being repeated and paid for twice.

- a :class:`~sutram_core.runs.Budget` is checked (tokens and cost before each model call
  that is really made, steps and seconds before each node); on breach the run pauses at
  a LangGraph interrupt with the reason in the ledger, and :meth:`DurableRunner.resume`
  continues it (with a new budget).

- errors that are usually temporary (rate limits, timeouts, connection errors; extend with
  ``recoverable=``) are retried with backoff from the checkpoint, then the run pauses
  (:class:`~sutram_core.errors.RunPausedError`) instead of failing; other errors fail the
  run, which keeps its state and the error in the ledger.

- ``@durable_step(compensate=undo)``: when a run fails for good or is cancelled
  (:meth:`DurableRunner.cancel`), the compensations of its completed steps run newest
  first, each exactly once (journaled);
- every run end is written as an episodic memory ("run R of graph G failed at node N:
  ...") with the run and thread as provenance, in Sutram's own namespace
  (:func:`run_memory_namespace`: ``("sutram", "runs", graph)``), which searches without a
  namespace leave out: ``MemoryStore.search(..., namespace=("sutram", "runs"))`` finds them;
- every execution is traced (:class:`SutramCallbackHandler`, the root span tagged with the
  run id); ``stream``, ``ainvoke`` and ``astream`` run durably as ``invoke`` does;
- :meth:`DurableRunner.fork` starts a thread from any checkpoint; its calls answer from
  the journal of the thread it came from until their inputs differ (``sutram diff``
  compares the two).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.checkpoint.base import CheckpointMetadata

from sutram_adapters.langchain.handler import SutramCallbackHandler
from sutram_adapters.langchain.journal import JournalCache
from sutram_adapters.langchain.model_journal import install_model_journal
from sutram_adapters.langchain.tool_journal import install_tool_journal
from sutram_adapters.langgraph._decode import graph_allowlist
from sutram_adapters.langgraph.saver import SutramSaver
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.journal import SqlCallJournal
from sutram_core.backends.sql.runs import SqlRunLedger
from sutram_core.errors import (
    DatabaseUnavailableError,
    InvalidRunError,
    LeaseLostError,
    MissingDependencyError,
    RunPausedError,
)
from sutram_core.memory.records import SYSTEM_ROOT
from sutram_core.runs import (
    LLAMA_INDEX_VERSION,
    Budget,
    CallScope,
    RunRecord,
    Spend,
    compensate_run,
)
from sutram_core.tenancy import DEFAULT_TENANT, validate_tenant
from sutram_core.traces.redaction import Redactor

__all__ = ["RECOVERABLE_ERROR_NAMES", "DurableRunner", "durable", "graph_version", "is_recoverable",
           "run_memory_namespace"]

_log = logging.getLogger("sutram.runs")
T = TypeVar("T")

_CACHE_LOCK = threading.Lock()


def run_memory_namespace(graph_name: str | None = None) -> tuple[str, ...]:
    """Where the runner remembers how runs ended: ``("sutram", "runs", graph_name)``, or
    ``("sutram", "runs")`` for every graph (a search prefix). Searches without a namespace
    leave these memories out, so they never mix into an app's own memories.

    >>> run_memory_namespace("support-agent")
    ('sutram', 'runs', 'support-agent')
    """
    return (SYSTEM_ROOT, "runs") if graph_name is None else (SYSTEM_ROOT, "runs", graph_name or "graph")


def graph_version(graph: Any) -> str:
    """A hash of a compiled graph's structure (nodes, edges) and its nodes' code."""
    parts: list[str] = []
    drawable = graph.get_graph()
    parts.append(repr(sorted(drawable.nodes)))
    parts.append(repr(sorted((e.source, e.target, bool(e.conditional)) for e in drawable.edges)))
    for name in sorted(graph.nodes):
        parts.append(f"{name}:{_node_code(graph.nodes[name].bound)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _node_code(bound: Any) -> str:
    """What a node runs, the same in every process (never an object's address): a function's
    source, a subgraph's own version, a ToolNode's tools and their code, else the type."""
    func = getattr(bound, "func", None) or getattr(bound, "afunc", None)
    if func is not None:
        try:
            return inspect.getsource(func)
        except Exception:  # no file (a REPL, exec'd code), or one that no longer parses as it did
            return str(getattr(func, "__qualname__", type(func).__qualname__))
    if hasattr(bound, "get_graph") and hasattr(bound, "nodes") and hasattr(bound, "channels"):
        return f"subgraph {graph_version(bound)}"
    tools = getattr(bound, "tools_by_name", None)
    if isinstance(tools, dict):
        return f"{type(bound).__qualname__} " + " ".join(f"{n}={_node_code(t)}" for n, t in sorted(tools.items()))
    return f"{type(bound).__module__}.{type(bound).__qualname__} {getattr(bound, 'name', '')}"


def _ensure_journal_cache() -> None:
    """Route LangChain's cache hook through the journal (once per process; a cache installed
    before keeps serving calls made outside durable tasks)."""
    with _CACHE_LOCK:
        current = get_llm_cache()
        if not isinstance(current, JournalCache):
            set_llm_cache(JournalCache(inner=current))
    install_model_journal()  # chat models: streams, cache=False, their own caches
    install_tool_journal()  # LangChain tools: exactly once by default


class _ScopedNode(Runnable[Any, Any]):
    """A graph node's runnable, run inside the journal scope of its task; in a run with a
    step or time budget, each execution is checked before and counted after."""

    def __init__(self, inner: Runnable[Any, Any], runner: DurableRunner) -> None:
        self.inner = inner
        self.runner = runner
        self.name = inner.get_name()

    @contextmanager
    def _scope(self, config: RunnableConfig | None) -> Iterator[None]:
        conf = (config or {}).get("configurable") or {}
        ns = str(conf.get("checkpoint_ns") or "")
        task_id = ns.rpartition("|")[2].partition(":")[2]
        thread_id = conf.get("thread_id")
        if not task_id or thread_id is None:
            yield
            return
        run_id = conf.get("sutram_run_id")
        active = self.runner._active.get(run_id) if run_id else None
        guard = active.guard if active else None
        with CallScope(self.runner.journal, tenant=self.runner.tenant, thread_id=str(thread_id), task_id=task_id,
                       checkpoint_ns=ns, run_id=run_id, origins=active.origins if active else (),
                       before_call=guard.check if guard else None,
                       after_call=guard.spent if guard else None,
                       tokens_left=guard.tokens_left if guard else None):
            if guard is None:
                yield
                return
            guard.check()
            started = time.monotonic()
            yield
            guard.step(time.monotonic() - started)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        with self._scope(config):
            return self.inner.invoke(input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        with self._scope(config):
            return await self.inner.ainvoke(input, config, **kwargs)


BUDGET_INTERRUPT = "sutram.budget"

# Errors that are usually temporary, by class name (so no provider SDK has to be imported):
# OpenAI's, Anthropic's and httpx's rate limit, timeout, connection and overload errors.
RECOVERABLE_ERROR_NAMES = frozenset({
    "RateLimitError", "APITimeoutError", "APIConnectionError", "InternalServerError", "OverloadedError",
    "ServiceUnavailableError", "TimeoutException", "ConnectTimeout", "ReadTimeout", "ConnectError",
    "RemoteProtocolError",
})


def is_recoverable(error: BaseException, extra: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether ``error`` is worth retrying: a connection or timeout error, a provider's rate
    limit or overload (by class name), Sutram's database being unavailable for a while
    (restart, dropped connection, locked file, full disk), or one of ``extra``."""
    if isinstance(error, (ConnectionError, TimeoutError, DatabaseUnavailableError, *extra)):
        return True
    return any(cls.__name__ in RECOVERABLE_ERROR_NAMES for cls in type(error).__mro__)


class _BudgetGuard:
    """A run's budget, checked before each node execution and each model call that is really
    made (not replayed), and settled after them. On breach the task calls LangGraph's
    ``interrupt()``: the run stops at a checkpoint with nothing lost, and
    :meth:`DurableRunner.resume` continues it (with a new budget).

    Tokens and cost are written to the ledger after every call (they are money); steps and
    seconds are kept here and written with the next call's spend or when the execution ends.
    """

    def __init__(self, runner: DurableRunner, run: RunRecord) -> None:
        self.runner, self.run = runner, run
        self.budget, self.spend = run.budget, run.spend
        self.pending = Spend()
        self._lock = threading.Lock()

    def check(self) -> None:
        """Pause the run here if its budget is used up (no database read: the guard keeps the
        spend it settled; a resume reads the new budget)."""
        from langgraph.types import interrupt

        while (reason := self.budget.exceeded(self.spend.plus(self.pending))) is not None:
            interrupt({"type": BUDGET_INTERRUPT, "run_id": self.run.run_id, "reason": reason,
                       "spend": self.spend.plus(self.pending).as_dict(),
                       "budget": self.budget.as_dict()})
            # resumed: this task replays the pause it resumed from; the budget given to the
            # resume decides whether it goes on or pauses again (at the next interrupt index)
            self.flush()
            current = self.runner.ledger.get(self.runner.tenant, self.run.run_id)
            self.budget, self.spend = current.budget, current.spend

    def tokens_left(self) -> int | None:
        """The tokens the budget has left (None without a token limit): the output limit a
        model call is given, where the model takes one."""
        if self.budget.max_tokens is None:
            return None
        return max(0, self.budget.max_tokens - self.spend.tokens)

    def spent(self, tokens: int, cost: float) -> None:
        """Settle a model call's tokens and cost (with the steps counted since the last); a
        call that took the run past its budget is reported in the log and on the run's trace
        (the run pauses before the next call)."""
        before = self.budget.overshoot(self.spend)
        self._write(Spend(tokens=tokens, cost_usd=cost))
        over = self.budget.overshoot(self.spend)
        if over is not None and over != before:
            _log.warning("sutram: run %s went past its budget on a model call: %s (it pauses before the next call)",
                        self.run.run_id, over)
            if self.runner.tracer is not None:
                self.runner.tracer.mark_run(self.run.run_id, {"sutram.budget.overshoot": over})

    def step(self, seconds: float) -> None:
        """Count one node execution."""
        with self._lock:
            self.pending = self.pending.plus(Spend(steps=1, seconds=seconds))

    def flush(self) -> None:
        """Write the steps and seconds counted so far."""
        if self.pending.steps or self.pending.seconds:
            self._write(Spend())

    def _write(self, spend: Spend) -> None:
        with self._lock:
            spend, self.pending = spend.plus(self.pending), Spend()
        try:
            total = self.runner.ledger.add_spend(self.runner.tenant, self.run, spend)
        except BaseException:
            with self._lock:  # not written: keep it for the next write
                self.pending = spend.plus(self.pending)
            raise
        with self._lock:
            self.spend = total


class _Active:
    """What the node wrappers need of a run that is executing in this process."""

    def __init__(self, guard: _BudgetGuard, origins: tuple[str, ...]) -> None:
        self.guard, self.origins = guard, origins


FORK_KEY = "sutram_fork_of"  # in a fork's first checkpoint's metadata: where it came from
_UNKNOWN: Any = object()  # "no invoke output to read the interrupts from"


def fork_origins(saver: SutramSaver, thread_id: str) -> tuple[str, ...]:
    """The threads a fork descends from, nearest first (empty for a thread that is no fork)."""
    first = saver._store.first_metadata(saver.tenant or DEFAULT_TENANT, thread_id) or {}
    origin = first.get(FORK_KEY)
    return tuple(origin.get("ancestors") or ()) if isinstance(origin, dict) else ()


def fork_thread(saver: SutramSaver, thread_id: str, checkpoint_id: str | None = None, *,
                new_thread_id: str | None = None) -> str:
    """Copy a checkpoint of ``thread_id`` (its latest if None) into a new thread, as its first
    checkpoint and without its pending writes (the fork runs the next tasks again; their
    calls answer from the journal while their inputs are the same); return the new id.
    What :meth:`DurableRunner.fork` and ``sutram fork`` do; needs no graph."""
    source: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    if checkpoint_id is not None:
        source["configurable"]["checkpoint_id"] = checkpoint_id
    found = saver.get_tuple(source)
    if found is None:
        raise InvalidRunError(f"thread {thread_id!r} has no checkpoint {checkpoint_id or '(latest)'} in tenant "
                              f"{saver.tenant or DEFAULT_TENANT!r}: pick one from the thread's history "
                              f"(sutram history {thread_id})")
    new_thread_id = new_thread_id or f"{thread_id}-fork-{uuid.uuid4().hex[:8]}"
    if saver.get_tuple({"configurable": {"thread_id": new_thread_id, "checkpoint_ns": ""}}) is not None:
        raise InvalidRunError(f"thread {new_thread_id!r} already exists: fork into a new thread id")
    origin = {"thread_id": thread_id, "checkpoint_id": found.config["configurable"]["checkpoint_id"],
              "ancestors": [thread_id, *fork_origins(saver, thread_id)]}
    metadata = cast(CheckpointMetadata, {**found.metadata, "source": "fork", FORK_KEY: origin})
    saver.put({"configurable": {"thread_id": new_thread_id, "checkpoint_ns": ""}},
              found.checkpoint, metadata, dict(found.checkpoint["channel_versions"]))
    return new_thread_id


class DurableRunner:
    """Runs a compiled graph durably (see the module docstring)."""

    def __init__(self, graph: Any, *, url: str | None = None, tenant: str = "default", lease_seconds: float = 30.0,
                 executor_id: str | None = None, name: str | None = None,
                 recoverable: tuple[type[BaseException], ...] = (), retries: int = 3,
                 backoff_seconds: float = 1.0, remember_runs: bool | None = None, embedder: Any = None,
                 trace: bool = True, outage_seconds: float = 60.0, content: bool | None = None,
                 redact: Callable[[Any], Any] | None = None) -> None:
        self.tenant = validate_tenant(tenant)
        # recoverable errors are retried (from the checkpoint; completed calls replay from the
        # journal) with exponential backoff, then the run pauses instead of failing
        self.recoverable = tuple(recoverable)
        self.retries = int(retries)
        self.backoff_seconds = float(backoff_seconds)
        # every run end is written as an episodic memory, in Sutram's own namespace
        # ("sutram", "runs", graph name), which users' searches without a namespace leave out;
        # by default when the memory extra is installed (True without it: MissingDependencyError)
        if remember_runs is None or remember_runs:
            try:
                import sutram_core.memory.store  # noqa: F401
            except MissingDependencyError:
                if remember_runs:
                    raise
                remember_runs = False
            else:
                remember_runs = True
        self.remember_runs = bool(remember_runs)
        self._embedder = embedder
        self._memory: Any = None
        self._url = url
        self.lease_seconds = float(lease_seconds)
        # how long the ledger write that ends an execution waits out a database outage
        self.outage_seconds = float(outage_seconds)
        self.executor_id = executor_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.db = Database(url)
        self.ledger = SqlRunLedger(self.db)
        self.journal = SqlCallJournal(self.db)
        # the graph's own schema types decode; nothing else a stored row names is rebuilt
        self.saver = SutramSaver(url, tenant=self.tenant, allowed_types=graph_allowlist(graph))
        self.name = name or graph.get_name()
        self.version = graph_version(graph)
        # the graph's own nodes run in journal scopes and count as steps; LangGraph's input
        # node (__start__) only writes the input
        nodes = {n: node if n.startswith("__") else node.copy(update={"bound": _ScopedNode(node.bound, self)})
                 for n, node in graph.nodes.items()}
        self.graph = graph.copy(update={"checkpointer": self.saver, "nodes": nodes})
        # a graph with an async-only node can only be run (and so recovered) through the async API
        self.needs_async = any(getattr(node.bound, "func", True) is None and getattr(node.bound, "afunc", None)
                               for node in graph.nodes.values())
        self._active: dict[str, _Active] = {}
        # each run is traced (one trace tree per execution, tagged with the run id)
        self.tracer: SutramCallbackHandler | None = (
            SutramCallbackHandler(url, tenant=self.tenant, content=content, redact=redact) if trace else None)
        # one redaction path for what the runner writes itself (the ledger's errors and
        # pause reasons, and so the run memories made from them), as for spans
        self.redactor = Redactor(content=content, redact=redact)
        _ensure_journal_cache()

    def close(self) -> None:
        """Release the database connections."""
        if self.tracer is not None:
            self.tracer.close()
        if self._memory is not None:
            self._memory.close()
        self.saver.close()
        self.db.close()

    def _outlast(self, write: Callable[[], T]) -> T:
        """``write()`` (a ledger write that records how an execution ended), tried again with
        backoff while the database is unavailable, for up to ``outage_seconds``: a run must
        not stay 'running' in the ledger because its end met a database restart. Past that
        the error propagates and the run's lease expires, so recovery resumes it later."""
        deadline = time.monotonic() + self.outage_seconds
        delay = 0.25
        while True:
            try:
                return write()
            except DatabaseUnavailableError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _remember(self, run_id: str) -> None:
        """Write how the run ended as an episodic memory, with the run and thread as provenance
        (a database outage while writing it loses the memory, never the run: logged)."""
        if not self.remember_runs:
            return
        try:
            self._outlast(lambda: self._write_memory(run_id))
        except DatabaseUnavailableError as exc:
            _log.warning("the episodic memory of run %s was not written: %s", run_id, exc)

    def _write_memory(self, run_id: str) -> None:
        from sutram_core.memory import MemoryStore

        run = self.ledger.get(self.tenant, run_id)
        if self._memory is None:
            self._memory = MemoryStore.from_url(self._url, tenant=self.tenant, embedder=self._embedder)
        where = ", ".join(node for node, _ in self.saver._store.stopped_tasks(self.tenant, run.thread_id))
        outcome = {"completed": "completed", "failed": f"failed at node {where or '?'}: {run.error}",
                   "paused": f"paused{' at node ' + where if where else ''}: {run.pause_reason}",
                   "cancelled": "was cancelled"}.get(run.status.value, run.status.value)
        text = (f"Run {run.run_id} of graph {run.graph_name} on thread {run.thread_id} {outcome} "
                f"after {run.attempts} attempt(s), {run.spend.tokens} tokens, ${run.spend.cost_usd:.6f}.")
        self._memory.put(run_memory_namespace(run.graph_name or "graph"), run.run_id,
                         {"text": text, "status": run.status.value, "graph_version": run.graph_version},
                         kind="episodic", provenance={"run_id": run.run_id, "thread_id": run.thread_id})

    def __enter__(self) -> DurableRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running -----------------------------------------------------------------------------

    def _start(self, thread_id: str, budget: Budget | None, run_id: str | None, input: Any) -> RunRecord:
        # the input is kept (serialized like checkpoints) in case the worker dies before the
        # first checkpoint is written: recovery then starts the run from it
        kept = None if input is None else self.saver.serde.dumps_typed(input)
        return self.ledger.create(self.tenant, run_id or uuid.uuid4().hex, thread_id=thread_id,
                                  graph_name=self.name, graph_version=self.version, budget=budget,
                                  executor=self.executor_id, lease_seconds=self.lease_seconds, input=kept)

    def _input_for(self, run: RunRecord, input: Any) -> Any:
        """What an execution starts from: ``input``, or for a run resumed with none whose
        thread has no checkpoint yet (its worker died first), the input it was created with."""
        if input is not None:
            return input
        if self.saver.get_tuple({"configurable": {"thread_id": run.thread_id, "checkpoint_ns": ""}}) is not None:
            return None
        kept = self.ledger.input(self.tenant, run.run_id)
        return None if kept is None else self.saver._decoder.loads(*kept)

    def _retry_input(self, run: RunRecord, input: Any) -> Any:
        """What a retry after a recoverable error starts from: the latest checkpoint (None),
        unless the thread has none because the failed attempt wrote none (the database went
        away before the first step was saved): then the input again, since LangGraph
        refuses to start a thread from nothing (EmptyInputError, seen when PostgreSQL
        restarted in the first half second of a run)."""
        if input is None:
            return None
        found = self.saver.get_tuple({"configurable": {"thread_id": run.thread_id, "checkpoint_ns": ""}})
        return input if found is None else None

    def invoke(self, input: Any, *, thread_id: str, budget: Budget | None = None, run_id: str | None = None,
               config: RunnableConfig | None = None) -> Any:
        """Run the graph on ``thread_id`` as a new recorded run; return its output."""
        return self._execute(self._start(thread_id, budget, run_id, input), input, config)

    def stream(self, input: Any, *, thread_id: str, budget: Budget | None = None, run_id: str | None = None,
               config: RunnableConfig | None = None, **stream_options: Any) -> Iterator[Any]:
        """Run the graph on ``thread_id`` as a new recorded run, yielding what LangGraph's
        ``stream`` yields (``stream_mode=``, ``subgraphs=`` pass through). A retry after a
        recoverable error streams on from the checkpoint."""
        run = self._start(thread_id, budget, run_id, input)
        yield from self._drive(run, config, lambda inp, conf: self.graph.stream(
            inp, conf, durability="sync", **stream_options), input)

    async def ainvoke(self, input: Any, *, thread_id: str, budget: Budget | None = None,
                      run_id: str | None = None, config: RunnableConfig | None = None) -> Any:
        """Async :meth:`invoke`."""
        run = await asyncio.to_thread(self._start, thread_id, budget, run_id, input)
        outputs = [out async for out in self._adrive(run, input, config, None)]
        return outputs[-1]

    async def astream(self, input: Any, *, thread_id: str, budget: Budget | None = None,
                      run_id: str | None = None, config: RunnableConfig | None = None,
                      **stream_options: Any) -> AsyncIterator[Any]:
        """Async :meth:`stream`."""
        run = await asyncio.to_thread(self._start, thread_id, budget, run_id, input)
        async for chunk in self._adrive(run, input, config, stream_options):
            yield chunk

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run that is not running elsewhere (pending, paused, or whose worker died)
        and run its compensations; return the run."""
        self._refuse_workflow_run(run_id)
        run = self.ledger.claim(self.tenant, run_id, executor=self.executor_id, lease_seconds=self.lease_seconds,
                                resume=True)
        if run is None:
            raise InvalidRunError(f"run {run_id!r} cannot be cancelled now: it is running elsewhere or has finished")
        self.ledger.finish(self.tenant, run, "cancelled")
        self.compensate(run_id)
        self._remember(run_id)
        return self.ledger.get(self.tenant, run_id)

    def _refuse_workflow_run(self, run_id: str) -> None:
        """A LlamaIndex workflow's run (the ledger is shared) is not this graph's to resume or
        cancel: refused before anything is claimed."""
        run = self.ledger.get(self.tenant, run_id)
        if run.graph_version.startswith(LLAMA_INDEX_VERSION):
            raise InvalidRunError(f"run {run_id!r} is a run of the LlamaIndex workflow {run.graph_name!r}: resume or "
                                  "cancel it with that workflow's durable_workflow()")

    def compensate(self, run_id: str) -> list[str]:
        """Run the compensations of the run's completed durable steps, newest first, each
        exactly once (a compensation that already ran is skipped); return the steps undone."""
        run = self.ledger.get(self.tenant, run_id)
        return compensate_run(self.journal, self.tenant, run.thread_id, run_id)

    def _claim_paused(self, run_id: str, budget: Budget | None, value: Any) -> tuple[RunRecord, Any]:
        """Claim a paused run for :meth:`resume`; the command to continue it with."""
        from langgraph.types import Command

        self._refuse_workflow_run(run_id)
        run = self.ledger.claim(self.tenant, run_id, executor=self.executor_id, lease_seconds=self.lease_seconds,
                                resume=True, budget=budget)
        if run is None:
            raise InvalidRunError(f"run {run_id!r} cannot be resumed now: it is running elsewhere or has finished")
        state = self.graph.get_state({"configurable": {"thread_id": run.thread_id}}, subgraphs=True)
        waiting = any(i.value.get("type") == BUDGET_INTERRUPT for i in _interrupts(state)
                      if isinstance(i.value, dict))
        if waiting:
            return run, Command(resume={"budget": run.budget.as_dict()})
        return run, None if value is _UNKNOWN else Command(resume=value)

    def resume(self, run_id: str, *, budget: Budget | None = None, value: Any = _UNKNOWN) -> Any:
        """Continue a paused run, with a new ``budget`` if given; model calls made before the
        pause are answered from the journal. A run paused at the graph's own ``interrupt()``
        (waiting for a person, in the graph or in a subgraph) continues with ``value`` as
        the interrupt's answer. A graph with async nodes is run through the async API (see
        :meth:`aresume`)."""
        run, command = self._claim_paused(run_id, budget, value)
        return self._execute(run, command, None)

    async def aresume(self, run_id: str, *, budget: Budget | None = None, value: Any = _UNKNOWN) -> Any:
        """Async :meth:`resume`."""
        run, command = await asyncio.to_thread(self._claim_paused, run_id, budget, value)
        return await self._aexecute(run, command, None)

    def _claim_expired(self, allow_version_change: bool) -> RunRecord | None:
        """Claim one run whose worker died (one at a time: a claimed run is executed, and its
        lease renewed, at once, so several workers share a backlog)."""
        claimed = self.ledger.claim_expired(executor=self.executor_id, lease_seconds=self.lease_seconds,
                                            limit=1, tenant=self.tenant, graph_name=self.name)
        if not claimed:
            return None
        run = claimed[0]
        if run.graph_version != self.version and not allow_version_change:
            self.ledger.pause(self.tenant, run, f"graph version changed from {run.graph_version} to "
                              f"{self.version}; resume with allow_version_change=True")
            raise InvalidRunError(
                f"run {run.run_id} was started by graph version {run.graph_version}, this graph is "
                f"{self.version}; it is paused. Pass allow_version_change=True to resume it anyway"
            )
        return run

    def recover(self, *, limit: int = 10, allow_version_change: bool = False,
                on_run: Callable[[RunRecord], None] | None = None) -> list[RunRecord]:
        """Resume up to ``limit`` runs whose worker died (lease expired), each from its latest
        checkpoint; return the runs as they ended, each also handed to ``on_run`` as it
        ends (progress over many runs). A run recorded by a different version of the graph
        is refused unless ``allow_version_change``. A graph with async nodes is run through
        the async API (in an event loop of its own; from async code, await :meth:`arecover`
        instead)."""
        resumed: list[RunRecord] = []
        while len(resumed) < limit and (run := self._claim_expired(allow_version_change)) is not None:
            try:
                self._execute(run, None, None)
            except Exception:  # the ledger has the failure; keep recovering the others
                pass
            resumed.append(self.ledger.get(self.tenant, run.run_id))
            if on_run is not None:
                on_run(resumed[-1])
        return resumed

    async def arecover(self, *, limit: int = 10, allow_version_change: bool = False,
                       on_run: Callable[[RunRecord], None] | None = None) -> list[RunRecord]:
        """Async :meth:`recover`: each run is resumed through the async API (async nodes,
        async model clients), in this event loop."""
        resumed: list[RunRecord] = []
        while len(resumed) < limit and (
                run := await asyncio.to_thread(self._claim_expired, allow_version_change)) is not None:
            try:
                await self._aexecute(run, None, None)
            except Exception:  # the ledger has the failure; keep recovering the others
                pass
            resumed.append(await asyncio.to_thread(self.ledger.get, self.tenant, run.run_id))
            if on_run is not None:
                on_run(resumed[-1])
        return resumed

    async def poll(self, *, interval: float = 5.0, limit: int = 10) -> None:
        """Recover runs whose worker died, every ``interval`` seconds, until cancelled: run it
        as an asyncio task beside an async app (e.g. in FastAPI's lifespan)::

            @asynccontextmanager
            async def lifespan(app):
                poller = asyncio.create_task(runner.poll(interval=5))
                yield
                poller.cancel()
        """
        while True:
            try:
                await self.arecover(limit=limit)
            except InvalidRunError as exc:  # a run of another graph version: paused, logged
                _log.warning("sutram: %s", exc)
            except DatabaseUnavailableError as exc:
                _log.warning("sutram: recovery poll skipped, the database is unavailable: %s", exc)
            await asyncio.sleep(interval)

    async def acancel(self, run_id: str) -> RunRecord:
        """Async :meth:`cancel`."""
        return await asyncio.to_thread(self.cancel, run_id)

    # -- forks -----------------------------------------------------------------------------

    def fork(self, thread_id: str, checkpoint_id: str | None = None, *, new_thread_id: str | None = None,
             values: Any = None, as_node: str | None = None) -> str:
        """Start a new thread from a checkpoint of ``thread_id`` (its latest if None), with
        ``values`` applied as an update (as LangGraph's ``update_state``) if given; return the
        new thread's id. Continue it with ``invoke(None, thread_id=new)``: the calls it
        replays are answered from the journal of the thread it came from (no model cost)
        until a call's inputs differ."""
        new_thread_id = fork_thread(self.saver, thread_id, checkpoint_id, new_thread_id=new_thread_id)
        if values is not None:
            self.graph.update_state({"configurable": {"thread_id": new_thread_id}}, values, as_node=as_node)
        return new_thread_id

    def _origins(self, thread_id: str) -> tuple[str, ...]:
        """The threads a fork descends from, nearest first (empty for a thread that is no fork)."""
        return fork_origins(self.saver, thread_id)

    # -- one execution of a run --------------------------------------------------------------

    def _prepare(self, run: RunRecord, config: RunnableConfig | None) -> RunnableConfig:
        conf: RunnableConfig = dict(config or {})  # type: ignore[assignment]
        conf["configurable"] = {**(conf.get("configurable") or {}), "thread_id": run.thread_id,
                                "sutram_run_id": run.run_id}
        conf["metadata"] = {**(conf.get("metadata") or {}), "thread_id": run.thread_id, "sutram_run_id": run.run_id}
        conf.setdefault("run_name", self.name)  # the trace is named after the run's graph, as the ledger is
        if self.tracer is not None:
            # one Sutram handler per run, whatever the caller passes (a handler kept from
            # before the app moved to durable() would record every span twice): the
            # runner's, whose trace is linked to the run ledger
            given = conf.get("callbacks")
            if given is None:
                conf["callbacks"] = [self.tracer]
            elif isinstance(given, list):
                conf["callbacks"] = [*(h for h in given if not isinstance(h, SutramCallbackHandler)), self.tracer]
            else:
                given = given.copy()
                for handler in [*given.handlers, *given.inheritable_handlers]:
                    if isinstance(handler, SutramCallbackHandler):
                        given.remove_handler(handler)
                given.add_handler(self.tracer, inherit=True)
                conf["callbacks"] = given
        self._active[run.run_id] = _Active(_BudgetGuard(self, run), self._origins(run.thread_id))
        return conf

    @contextmanager
    def _leased(self, run: RunRecord) -> Iterator[list[LeaseLostError]]:
        """Hold the run's lease (a heartbeat thread renews it) while the body runs."""
        stop = threading.Event()
        lost: list[LeaseLostError] = []

        def beat() -> None:
            while not stop.wait(self.lease_seconds / 3):
                try:
                    self.ledger.heartbeat(self.tenant, run, lease_seconds=self.lease_seconds)
                except LeaseLostError as exc:
                    lost.append(exc)
                    return
                except Exception:  # a database hiccup: try again at the next beat
                    continue

        heart = threading.Thread(target=beat, name=f"sutram-lease-{run.run_id}", daemon=True)
        heart.start()
        try:
            yield lost
        finally:
            stop.set()
            heart.join()
            active = self._active.pop(run.run_id, None)
            if active is not None and not lost:
                with contextlib.suppress(LeaseLostError):  # the run already ended (failed, paused)
                    self._outlast(active.guard.flush)
        if lost:
            raise lost[0]

    def _retry_delay(self, run: RunRecord, exc: Exception, attempt: int, lost: list[LeaseLostError]) -> float:
        """After a failed attempt: the seconds to wait before the next, or raise (the run is
        failed, or paused when a recoverable error persists)."""
        if lost:
            raise exc
        active = self._active.get(run.run_id)
        if active is not None:
            self._outlast(active.guard.flush)
        if not is_recoverable(exc, self.recoverable):
            error = self.redactor.error(exc)
            self._outlast(lambda: self.ledger.finish(self.tenant, run, "failed", error=error))
            self.compensate(run.run_id)
            self._remember(run.run_id)
            raise exc
        if attempt >= self.retries:
            reason = f"{self.redactor.error(exc)} (still failing after {self.retries} retries)"
            self._outlast(lambda: self.ledger.pause(self.tenant, run, f"recoverable error: {reason}"))
            self._remember(run.run_id)
            raise RunPausedError(run.run_id, reason) from exc
        return min(30.0, self.backoff_seconds * 2.0 ** attempt)

    def _settle(self, run: RunRecord, output: Any = _UNKNOWN) -> None:
        """Record how the execution ended: paused at an interrupt (a budget's or the graph's
        own), or completed. ``output``: what ``invoke`` returned (it lists the interrupts);
        after a stream the thread's state is read instead."""
        if isinstance(output, dict):
            values = [getattr(i, "value", None) for i in output.get("__interrupt__", ())]
        else:
            state = self._outlast(lambda: self.graph.get_state({"configurable": {"thread_id": run.thread_id}}))
            values = [i.value for i in _interrupts(state)]
        budget = next((v for v in values if isinstance(v, dict) and v.get("type") == BUDGET_INTERRUPT), None)
        if budget is not None:
            self._outlast(lambda: self.ledger.pause(self.tenant, run, f"budget: {budget['reason']}"))
        elif values:
            self._outlast(lambda: self.ledger.pause(self.tenant, run, "interrupted: waiting for input"))
        else:
            self._outlast(lambda: self.ledger.finish(self.tenant, run, "completed"))
        self._remember(run.run_id)
        if self.tracer is not None:
            self.tracer.flush()

    def _execute(self, run: RunRecord, input: Any, config: RunnableConfig | None) -> Any:
        if self.needs_async:  # async nodes cannot run through the sync API
            return _run_coroutine(self._aexecute(run, input, config))
        outputs = list(self._drive(run, config, lambda inp, conf: [self.graph.invoke(inp, conf, durability="sync")],
                                   input, invoked=True))
        return outputs[-1]

    async def _aexecute(self, run: RunRecord, input: Any, config: RunnableConfig | None) -> Any:
        outputs = [out async for out in self._adrive(run, input, config, None)]
        return outputs[-1]

    def _drive(self, run: RunRecord, config: RunnableConfig | None,
               attempt_with: Callable[[Any, RunnableConfig], Iterable[Any]], input: Any = None,
               invoked: bool = False) -> Iterator[Any]:
        conf = self._prepare(run, config)
        input = self._input_for(run, input)
        last: Any = _UNKNOWN
        with self._leased(run) as lost:
            attempt = 0
            while True:
                try:
                    # durability="sync": a step's checkpoint is on disk before the next step runs;
                    # with LangGraph's default ("async") a kill mid-node can lose the checkpoint
                    # the node started from, and with it the task id its journal is keyed by
                    for last in attempt_with(input if attempt == 0 else self._retry_input(run, input), conf):
                        yield last
                    break
                except GeneratorExit:
                    self._active[run.run_id].guard.flush()
                    self.ledger.pause(self.tenant, run, "the caller stopped reading the stream; resume to go on")
                    raise
                except Exception as exc:
                    time.sleep(self._retry_delay(run, exc, attempt, lost))
                    attempt += 1
        self._settle(run, last if invoked else _UNKNOWN)

    async def _adrive(self, run: RunRecord, input: Any, config: RunnableConfig | None,
                      stream_options: dict[str, Any] | None) -> AsyncIterator[Any]:
        conf = self._prepare(run, config)
        input = await asyncio.to_thread(self._input_for, run, input)
        output: Any = _UNKNOWN
        with self._leased(run) as lost:
            attempt = 0
            while True:
                try:
                    given = input if attempt == 0 else await asyncio.to_thread(self._retry_input, run, input)
                    if stream_options is None:
                        output = await self.graph.ainvoke(given, conf, durability="sync")
                        yield output
                    else:
                        async for chunk in self.graph.astream(given, conf, durability="sync", **stream_options):
                            yield chunk
                    break
                except Exception as exc:
                    await asyncio.sleep(await asyncio.to_thread(self._retry_delay, run, exc, attempt, lost))
                    attempt += 1
        await asyncio.to_thread(self._settle, run, output if stream_options is None else _UNKNOWN)


def _run_coroutine(coro: Any) -> Any:
    """Run ``coro`` to its end from sync code: in a new event loop, or, when this thread
    already runs one, in a worker thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="sutram-async-run")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return result[0]


def _interrupts(state: Any) -> list[Any]:
    return [i for task in getattr(state, "tasks", ()) for i in getattr(task, "interrupts", ())]


def durable(graph: Any, *, url: str | None = None, tenant: str = "default", **options: Any) -> DurableRunner:
    """Wrap a compiled graph in a :class:`DurableRunner` (``url`` defaults to ``SUTRAM_URL``)."""
    return DurableRunner(graph, url=url, tenant=tenant, **options)
