"""Durable LlamaIndex workflows and agents: ``durable_workflow(workflow)``.

A ``Workflow``, ``FunctionAgent`` or ``AgentWorkflow`` wrapped by :func:`durable_workflow`
runs as a run of Sutram's run ledger (the one LangGraph's ``durable()`` uses: status, lease,
fence, budget, spend, attempts), with no change to its steps:

* **Journal of ticks.** The workflow runtime reduces every change of a run (an event sent,
  a step's result, a timeout) as a *tick*. Sutram's runtime plugin writes each tick to the
  database before the tick's effects start (the steps it schedules), fenced by the run's
  lease. Replaying the ticks (LlamaIndex's own ``BasicRuntime.restore``) rebuilds the run as
  it was, so a run whose worker died continues from there in another process:
  :meth:`DurableWorkflow.recover`. Steps that had completed are not run again; a step that
  was running is run again.
* **Journal of calls.** Each step runs in a call scope keyed by the run, the step, its input
  event and how many invocations of the step on that event went first (the same after a
  replay, which the runtime's own work-item ids are not), so the model calls (the
  workflow's and agents' LLMs are journaled, as ``journaled(llm)`` does) and the tools
  (``FunctionTool``s of agents, and any ``@durable_step``) a step made before the crash are
  answered from the journal when it runs again: each made once.
* **Budgets and recoverable errors** pause the run instead of ending it: nothing after the
  pause is journaled, and :meth:`DurableWorkflow.resume` replays to the same point and goes
  on. A run waiting for a person (``InputRequiredEvent`` / ``ctx.wait_for_event``) is parked
  as paused; ``resume(run_id, event=HumanResponseEvent(...))`` from any process goes on.
  :meth:`DurableWorkflow.cancel` runs the compensations of its durable steps.
* **Traces.** Each execution is traced by Sutram's LlamaIndex instrumentation, its root span
  naming the ledger run (``sutram.run_id``), so the console shows it as it shows LangGraph
  runs.

    from sutram_adapters.llama_index import durable_workflow
    agent = durable_workflow(FunctionAgent(tools=[...], llm=llm), url="sqlite:///.sutram/sutram.db")
    result = await agent.run(user_msg="refund order A-1042")
    ...
    await agent.recover()  # in any process: runs whose worker died

What it does not cover: the events a run streams (``handler.stream_events()``) are not
replayed to a new reader after a crash; a nested workflow run from inside a step is one
step of the outer run (its own calls journaled, its own ticks not); the run's ``Context``
store is kept as the runtime's ticks rebuild it, so a value a step set is back after a
replay only as far as the step that set it completed. Ticks are decoded by the workflow's
JSON serializer, which rebuilds the event classes the workflow names.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import json
import logging
import os
import socket
import time
import types
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.journal import SqlCallJournal
from sutram_core.backends.sql.runs import SqlRunLedger
from sutram_core.backends.sql.workflow_journal import SqlWorkflowJournal
from sutram_core.errors import (
    ConfigurationError,
    InvalidRunError,
    LeaseLostError,
    MissingDependencyError,
    RunPausedError,
)
from sutram_core.runs import (
    LLAMA_INDEX_VERSION,
    Budget,
    CallScope,
    RunRecord,
    Spend,
    compensate_run,
    durable_step,
)
from sutram_core.tenancy import validate_tenant

try:  # the llama-index extra
    from llama_index.core.llms.llm import LLM
    from llama_index.core.tools import FunctionTool
    from workflows import Workflow
    from workflows.context import Context, JsonSerializer
    from workflows.events import InputRequiredEvent
    from workflows.plugins import basic_runtime
    from workflows.plugins.basic import get_current_run_id
    from workflows.runtime.runtime_decorators import (
        BaseInternalRunAdapterDecorator,
        BaseRuntimeDecorator,
    )
    from workflows.runtime.types.internal_state import BrokerState
    from workflows.runtime.types.plugin import InternalRunAdapter, SnapshottableAdapter
    from workflows.runtime.types.results import StepWorkerStateContextVar
    from workflows.runtime.types.ticks import WorkflowTick
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("llama-index-core", "llama-index") from exc

from sutram_adapters.langgraph.durable import is_recoverable
from sutram_adapters.llama_index.journal import journaled

__all__ = ["LLAMA_INDEX_VERSION", "DurableWorkflow", "durable_workflow", "workflow_version"]

_log = logging.getLogger(__name__)
_SERIALIZER = JsonSerializer()
_MEMORY = "memory"  # where LlamaIndex's agents keep their memory in the Context store
_BUFFER = "llama_index.core.memory.chat_memory_buffer.ChatMemoryBuffer"
_TOKEN_LIMIT = 40_000


def workflow_version(workflow: Any) -> str:
    """A hash of a workflow's steps (names and code) and, for an agent or agent workflow,
    of what makes it that agent (its name, prompt, tools and model): a run is recovered only
    by the same."""
    parts = []
    agents = getattr(workflow, "agents", None)
    for agent in list(agents.values()) if isinstance(agents, dict) else [workflow]:
        if hasattr(agent, "system_prompt") or hasattr(agent, "tools"):
            tools = [getattr(getattr(t, "metadata", None), "name", None) or getattr(t, "__name__", repr(t))
                     for t in getattr(agent, "tools", None) or []]
            llm = getattr(agent, "llm", None)
            parts.append(f"agent {getattr(agent, 'name', '')} {getattr(agent, 'system_prompt', '')!r} {sorted(tools)} "
                         f"{type(llm).__name__} {getattr(getattr(llm, 'metadata', None), 'model_name', '')}")
    for name, fn in sorted(workflow._get_steps().items()):
        func = getattr(fn, "__func__", fn)
        try:
            code = inspect.getsource(func)
        except Exception:  # no file (a REPL, exec'd code)
            code = str(getattr(func, "__qualname__", name))
        parts.append(f"{name}:{code}")
    return LLAMA_INDEX_VERSION + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class _Stop(Exception):
    """Raised into the runtime to end an execution whose run pauses (nothing after it is
    journaled, so a resume replays to the same point)."""


class _Execution:
    """One execution of a run in this process: its lease, journal position, budget and why
    it stops (a budget, an error to retry, a person to wait for)."""

    def __init__(self, owner: DurableWorkflow, run: RunRecord, next_seq: int) -> None:
        self.owner, self.run = owner, run
        self.next_seq = next_seq
        self.budget, self.spend = run.budget, run.spend
        self.pending = Spend()
        self.stop: tuple[str, str] | None = None  # (kind: budget | retry | input, reason)
        self.lost: LeaseLostError | None = None
        self.held: list[tuple[int, str]] = []  # ticks not written yet (see journal)
        self.sending: set[str | None] = set()  # steps whose sends are held
        self.started: set[str | None] = set()  # step invocations started in this execution
        self.finished: set[str | None] = set()  # those whose result is journaled (or held)
        self.done: dict[str, int] = {}  # completed invocations per (step, input event) key
        self.running: dict[str | None, str] = {}  # invocation -> its key, until its result
        self.numbered: dict[str | None, int] = {}  # invocation -> how many of its key went first
        self.state: str | None = None  # the Context store after the last step result, not written yet
        self.writing = asyncio.Lock()

    def halt(self, kind: str, reason: str) -> None:
        if self.stop is None:
            self.stop = (kind, reason)

    async def journal(self, tick: WorkflowTick, adapter: InternalRunAdapter) -> None:
        """Write ``tick`` before its effects run. An event a step sends while it runs is held
        back, with every tick after it, until that step's result: a step that is run again
        after a crash sends its events again, and the runtime re-emits a send only when the
        step's result recorded it, so journaling the first sends would deliver them twice."""
        if self.stop is not None or self.lost is not None:
            raise _Stop(self.stop[1] if self.stop else str(self.lost))
        kind = getattr(tick, "type", None)
        if kind == "add_event" and getattr(tick, "emission", None) is not None:
            invocation = tick.emission.invocation_id  # type: ignore[union-attr]
            # held while the sending step has no journaled result (a send of a step of an
            # earlier execution, re-emitted by the runtime, is already in that result)
            if invocation in self.started and invocation not in self.finished:
                self.sending.add(invocation)
        elif kind == "step_result":
            self.pending = self.pending.plus(Spend(steps=1))
            invocation = getattr(tick, "invocation_id", None)
            self.sending.discard(invocation)
            self.finished.add(invocation)
            key = self.running.pop(invocation, None)
            if key is not None and _completed(tick):
                self.done[key] = self.done.get(key, 0) + 1
            # the ticks rebuild the run but not its Context store: keep it as the step left it
            self.state = await self.owner._state(self.run.run_id, adapter)
        self.held.append((self.next_seq, _SERIALIZER.serialize(tick)))
        self.next_seq += 1
        if self.sending or (kind == "step_result" and _routes_an_event(tick)):
            # a step's returned event comes next as a tick of its own, before any step can
            # take it: both are written in one transaction (a crash between only runs the
            # step again, its calls answered from the journal)
            return
        await self.drain()

    async def drain(self) -> None:
        """Write the ticks held so far (the last with the newest state kept)."""
        async with self.writing:  # in tick order (the journal allows no gap)
            if not self.held:
                return
            state, self.state = self.state, None
            rows = [(seq, data, state if i == len(self.held) - 1 else None)
                    for i, (seq, data) in enumerate(self.held)]
            self.held = []
            try:
                await self.owner.db.offload(self.owner.ticks.append, self.owner.tenant, self.run.run_id,
                                            self.run.fence, rows)
            except LeaseLostError as exc:
                self.lost = exc
                raise

    # -- the call scope's hooks (called from steps, possibly in executor threads) --------------

    def check(self) -> None:
        reason = self.budget.exceeded(self.spend.plus(self.pending))
        if reason is not None:
            self.halt("budget", reason)
            raise _Stop(f"budget: {reason}")

    def tokens_left(self) -> int | None:
        if self.budget.max_tokens is None:
            return None
        return max(0, self.budget.max_tokens - self.spend.tokens)

    def spent(self, tokens: int, cost: float) -> None:
        spend, self.pending = Spend(tokens=tokens, cost_usd=cost).plus(self.pending), Spend()
        self.spend = self.owner.ledger.add_spend(self.owner.tenant, self.run, spend)

    def flush(self) -> None:
        if self.pending.steps or self.pending.seconds:
            self.spent(0, 0.0)


def _step_key(name: str, event: Any) -> str:
    """A step invocation's key in the call journal: the step and a hash of its input event."""
    try:
        data = _SERIALIZER.serialize(event)
    except Exception:  # an event JSON cannot hold: its type alone
        data = type(event).__qualname__
    return f"{name}:{hashlib.sha256(data.encode()).hexdigest()[:16]}"


def _completed(tick: Any) -> bool:
    """Whether a step result ends the invocation: not a failure the runtime retries, nor a
    step suspended at ``wait_for_event`` (run again with the same event when the answer
    comes, it answers its calls from the journal)."""
    return all(getattr(r, "type", None) not in ("failed", "add_waiter") for r in getattr(tick, "result", ()))


def _decode_tick(data: str) -> Any:
    """A journaled tick as the runtime's model (its events rebuilt by the JSON serializer)."""
    from workflows.runtime.types.ticks import WorkflowTickAdapter

    with _SERIALIZER.validation_context():
        return WorkflowTickAdapter.validate_python(_SERIALIZER.deserialize(data))


@dataclass
class _Replay:
    """A run's journal replayed through the runtime's own reducer, in one pass."""

    ctx: Any  # the Context rebuilt from the ticks (its store is set apart, see _context)
    ending: Any  # the runtime's command that ended the run (complete, fail, halt), if one did
    asked: bool  # its last event for a person is a question not answered yet
    done: dict[str, int]  # completed invocations per (step, input event) key


def _replay(workflow: Any, records: list[tuple[int, str]]) -> _Replay:
    """Replay the journal as ``basic_runtime.restore`` does, keeping what the reducer says
    on the way: whether a tick ended the run (a ``StopEvent`` the runtime accepted, not
    one it discarded and ran the step again for; a step failure that ends the workflow),
    whether a question to a person is open (an ``InputRequiredEvent`` the run published or
    returned, not followed by a ``HumanResponseEvent``), and the completed invocations."""
    from workflows.context.context_types import SerializedContext
    from workflows.events import HumanResponseEvent
    from workflows.runtime.control_loop.reduce import _reduce_tick
    from workflows.runtime.types.commands import (
        CommandCompleteRun,
        CommandFailWorkflow,
        CommandHalt,
    )
    from workflows.runtime.types.internal_state import BrokerState

    state = BrokerState.from_workflow(workflow)
    ending: Any = None
    asked = False
    done: dict[str, int] = {}
    for seq, data in records:
        if seq != state.journal_seq:
            raise InvalidRunError(f"the run's journal has a gap: tick {state.journal_seq} is missing")
        tick = _decode_tick(data)
        kind = getattr(tick, "type", None)
        if kind == "step_result" and _completed(tick):
            key = _step_key(tick.step_id.name, tick.event)
            done[key] = done.get(key, 0) + 1
        for event in [getattr(tick, "event", None), *(getattr(r, "result", None) for r in getattr(tick, "result", ()))]:
            if isinstance(event, InputRequiredEvent) and kind in ("publish_event", "step_result"):
                asked = True
            elif isinstance(event, HumanResponseEvent) and kind == "add_event":
                asked = False
        state, commands = _reduce_tick(tick, state, time.time())
        if ending is None:
            ending = next((c for c in commands
                           if isinstance(c, (CommandCompleteRun, CommandFailWorkflow, CommandHalt))), None)
    restored = state.to_serialized(_SERIALIZER)
    restored.state = SerializedContext().state
    ctx = Context.from_dict(workflow, restored.model_dump(mode="python"), serializer=_SERIALIZER)
    return _Replay(ctx, ending, asked, done)


async def _stop_run(handler: Any) -> None:
    """End an execution that is pausing or failing: LlamaIndex's cancel goes through the
    runtime as a tick, which the journal refuses once the execution stops (nothing after
    the pause is journaled), so the run's control loop ends there."""
    with contextlib.suppress(BaseException):
        await handler.cancel_run(timeout=5.0)
    with contextlib.suppress(BaseException):
        await handler


def _routes_an_event(tick: Any) -> bool:
    """Whether a step result returned an event the runtime routes as a tick of its own."""
    from workflows.events import StopEvent

    return any(getattr(r, "type", None) == "result" and getattr(r, "result", None) is not None
               and not isinstance(r.result, StopEvent) for r in getattr(tick, "result", ()))


class _JournalingAdapter(BaseInternalRunAdapterDecorator, SnapshottableAdapter):
    """The runtime's per-run adapter with each tick journaled before its effects run."""

    def __init__(self, decorated: InternalRunAdapter, owner: DurableWorkflow) -> None:
        super().__init__(decorated)
        self._owner = owner

    async def on_tick(self, tick: WorkflowTick) -> None:
        await self._decorated.on_tick(tick)
        execution = self._owner._active.get(self.run_id)
        if execution is not None:
            await execution.journal(tick, self._decorated)

    @property
    def init_state(self) -> BrokerState:
        return self._decorated.init_state  # type: ignore[attr-defined,no-any-return]

    def replay(self) -> list[WorkflowTick]:
        return self._decorated.replay()  # type: ignore[attr-defined,no-any-return]


class _SutramRuntime(BaseRuntimeDecorator):
    """LlamaIndex's basic runtime, with the run adapter that journals ticks."""

    def __init__(self, owner: DurableWorkflow) -> None:
        super().__init__(basic_runtime)
        self._owner = owner

    def get_internal_adapter(self, workflow: Workflow) -> InternalRunAdapter:
        return _JournalingAdapter(self._decorated.get_internal_adapter(workflow), self._owner)


def _journaled_tool(tool: Any) -> Any:
    """A ``FunctionTool`` whose function runs as a durable step (its result journaled; a
    tool that takes the workflow's ``Context`` is left as it is, its input not being data)."""
    if callable(tool) and not isinstance(tool, FunctionTool) and not hasattr(tool, "metadata"):
        tool = FunctionTool.from_defaults(fn=tool)
    if not isinstance(tool, FunctionTool) or getattr(tool, "ctx_param_name", None) or getattr(tool, "_sutram", False):
        return tool
    name = f"tool:{tool.metadata.name}"
    fn, afn = tool._fn, tool._async_fn
    tool._fn = durable_step(fn, name=name)
    tool._async_fn = durable_step(afn, name=name)
    tool._sutram = True
    return tool


class DurableWorkflow:
    """Runs a LlamaIndex workflow or agent durably (see the module docstring)."""

    def __init__(self, workflow: Any, *, url: str | None = None, tenant: str = "default", name: str | None = None,
                 lease_seconds: float = 30.0, executor_id: str | None = None,
                 recoverable: tuple[type[BaseException], ...] = (), retries: int = 3, backoff_seconds: float = 1.0,
                 journal_llms: bool = True, trace: bool = True) -> None:
        if not isinstance(workflow, Workflow):
            raise ConfigurationError(f"durable_workflow takes a llama-index Workflow or agent, not {type(workflow)!r}")
        if getattr(workflow, "_sutram_durable", False):
            raise ConfigurationError("this workflow is already wrapped by durable_workflow(): use that wrapper "
                                     "(a second one would take its runtime, and its runs would not be journaled)")
        if getattr(workflow, "_runtime_locked", False):
            raise ConfigurationError("this workflow has already run: wrap it with durable_workflow() before its "
                                     "first run (its runtime cannot change after that)")
        self.tenant = validate_tenant(tenant)
        self.workflow = workflow
        self.name = name or getattr(workflow, "name", None) or type(workflow).__name__
        self.version = workflow_version(workflow)
        self.lease_seconds = float(lease_seconds)
        self.recoverable = tuple(recoverable)
        self.retries = int(retries)
        self.backoff_seconds = float(backoff_seconds)
        self.executor_id = executor_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.db = Database(url)
        self.ledger = SqlRunLedger(self.db)
        self.calls = SqlCallJournal(self.db)
        self.ticks = SqlWorkflowJournal(self.db)
        self._active: dict[str, _Execution] = {}
        self._url = url
        self._trace = trace
        workflow._switch_runtime(_SutramRuntime(self))
        object.__setattr__(workflow, "_sutram_durable", True)
        self._retrying = {name for name, fn in workflow._get_steps().items()
                          if getattr(getattr(fn, "_step_config", None), "retry_policy", None) is not None}
        self._scope_steps(workflow)
        if journal_llms:
            self._journal_calls(workflow)

    def close(self) -> None:
        """Release the database connections."""
        self.db.close()

    async def __aenter__(self) -> DurableWorkflow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- wrapping the workflow ---------------------------------------------------------------

    def _scope_steps(self, workflow: Any) -> None:
        """Run each step in a call scope: the runtime finds a workflow's steps among its bound
        methods and calls each by its attribute name, so each becomes a bound method of the
        instance that opens the scope and calls the step."""
        for name, fn in workflow._get_steps().items():
            try:
                original = getattr(workflow, name)
            except AttributeError:  # a free function added with @step(workflow=...)
                original = fn
            object.__setattr__(workflow, name, types.MethodType(self._scoped(name, original), workflow))

    def _scoped(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        like = getattr(fn, "__func__", fn)  # its attributes (the step's config) are the wrapper's
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(like)
            async def astep(_self: Any, *args: Any, **kwargs: Any) -> Any:
                with self._scope(name):
                    return await fn(*args, **kwargs)
            return astep

        @functools.wraps(like)
        def step(_self: Any, *args: Any, **kwargs: Any) -> Any:
            with self._scope(name):
                return fn(*args, **kwargs)
        return step

    @contextlib.contextmanager
    def _scope(self, name: str) -> Iterator[None]:
        run_id = get_current_run_id()
        execution = self._active.get(run_id) if run_id is not None else None
        if execution is None:  # not a durable run (or a workflow called directly)
            yield
            return
        worker = StepWorkerStateContextVar.get(None)
        state = getattr(worker, "state", None)
        invocation = getattr(state, "invocation_id", None)
        execution.started.add(invocation)
        path = "/".join(getattr(state, "scope_path", ()) or ())
        # the step's task in the journal: the step, its input event, and how many invocations
        # of the step on the same event went before it (the same after a replay; the
        # runtime's work-item ids depend on the order concurrent steps' ticks arrived in)
        key = _step_key(name, getattr(worker, "event", None))
        if invocation not in execution.numbered:
            execution.numbered[invocation] = execution.done.get(key, 0) + sum(
                1 for k in execution.running.values() if k == key)
            execution.running[invocation] = key
        # a retry under the step's own retry_policy asks its calls again (a new position in the
        # journal); a step run again after a crash or a pause answers them from the journal
        attempt = getattr(getattr(worker, "retry", None), "retry_number", 0) or 0
        task = f"{key}#{execution.numbered[invocation]}" + (f":retry{attempt}" if attempt else "")
        execution.check()  # the budget's steps and seconds, before the step starts
        started = time.monotonic()
        with CallScope(self.calls, tenant=self.tenant, thread_id=execution.run.thread_id, task_id=task,
                       checkpoint_ns=path, run_id=execution.run.run_id, before_call=execution.check,
                       after_call=execution.spent, tokens_left=execution.tokens_left):
            try:
                yield
            except _Stop:
                raise
            except Exception as exc:
                # a step with a retry_policy retries it itself; else the run is retried from
                # its journal and paused if the error persists
                if is_recoverable(exc, self.recoverable) and name not in self._retrying:
                    execution.halt("retry", f"{type(exc).__name__}: {exc}")
                raise
            finally:
                execution.pending = execution.pending.plus(Spend(seconds=time.monotonic() - started))

    def _journal_calls(self, workflow: Any) -> None:
        """Journal the model calls and tools the workflow holds: an agent's (or each agent of
        an ``AgentWorkflow``) LLM and function tools, and LLMs kept as the workflow's
        attributes."""
        agents = getattr(workflow, "agents", None)
        for holder in list(agents.values()) if isinstance(agents, dict) else [workflow]:
            llm = getattr(holder, "llm", None)
            if isinstance(llm, LLM):
                holder.llm = journaled(llm)
            tools = getattr(holder, "tools", None)
            if isinstance(tools, list):
                holder.tools = [_journaled_tool(t) for t in tools]
        for attr, value in list(vars(workflow).items()):
            if isinstance(value, LLM):
                object.__setattr__(workflow, attr, journaled(value))

    # -- running -----------------------------------------------------------------------------

    async def run(self, *, run_id: str | None = None, budget: Budget | None = None, **start: Any) -> Any:
        """Run the workflow durably and return its result (as ``await workflow.run(...)``
        does). ``start``: the start event's fields (or ``start_event=``). Raises
        :class:`RunPausedError` when the run pauses (budget, an error that kept recurring, a
        person to wait for): :meth:`resume` goes on."""
        start_event = start.pop("start_event", None) or self._start_event(start)
        kept = ("json", _SERIALIZER.serialize(start_event).encode())
        run_id = run_id or uuid.uuid4().hex
        run = await self.db.offload(
            self.ledger.create, self.tenant, run_id, thread_id=run_id,
            graph_name=self.name, graph_version=self.version, budget=budget, executor=self.executor_id,
            lease_seconds=self.lease_seconds, input=kept)
        return await self._execute(run)

    def _start_event(self, fields: dict[str, Any]) -> Any:
        """The start event ``workflow.run(**fields)`` would build (an agent's with every field
        it serializes set, as the agent's own ``run`` does)."""
        from llama_index.core.agent.workflow.workflow_events import AgentWorkflowStartEvent

        if issubclass(self.workflow._start_event_class, AgentWorkflowStartEvent):
            fields = {"user_msg": None, "chat_history": None, "memory": None, "max_iterations": None,
                      "early_stopping_method": None, **fields}
            return AgentWorkflowStartEvent(**fields)
        return self.workflow._get_start_event_instance(None, **fields)

    async def resume(self, run_id: str, *, budget: Budget | None = None, event: Any = None) -> Any:
        """Continue a paused run (with a new ``budget`` if given); ``event``: the answer a run
        waiting for a person gets (e.g. a ``HumanResponseEvent``)."""
        await self._own(run_id)
        run = await self.db.offload(self.ledger.claim, self.tenant, run_id, executor=self.executor_id,
                                    lease_seconds=self.lease_seconds, resume=True, budget=budget)
        if run is None:
            raise InvalidRunError(f"run {run_id!r} cannot be resumed now: it is running elsewhere or has finished")
        return await self._execute(run, send=event)

    async def _own(self, run_id: str) -> RunRecord:
        """The run, if it is one of this workflow's (another graph's or workflow's run is
        refused before anything is claimed or read)."""
        run = await self.db.offload(self.ledger.get, self.tenant, run_id)
        if run.graph_name != self.name:
            raise InvalidRunError(f"run {run_id!r} is a run of {run.graph_name!r}, not of {self.name!r}: use that "
                                  "workflow's durable_workflow() (or runner) for it")
        return run

    async def recover(self, *, limit: int = 10, allow_version_change: bool = False) -> list[RunRecord]:
        """Resume up to ``limit`` runs of this workflow whose worker died (lease expired), each
        from its journal; return them as they ended. Several processes may recover at once:
        each run is claimed by one. Runs started by another version of the workflow (other
        steps' code, or another agent of the same name) are left to a worker running that
        version, unless ``allow_version_change``."""
        resumed: list[RunRecord] = []
        while len(resumed) < limit:
            claimed = await self.db.offload(self.ledger.claim_expired, executor=self.executor_id,
                                            lease_seconds=self.lease_seconds, limit=1, tenant=self.tenant,
                                            graph_name=self.name,
                                            graph_version=None if allow_version_change else self.version)
            if not claimed:
                break
            run = claimed[0]
            with contextlib.suppress(Exception):  # the ledger has how it ended
                await self._execute(run)
            resumed.append(await self.db.offload(self.ledger.get, self.tenant, run.run_id))
        return resumed

    async def result(self, run_id: str) -> Any:
        """The result of a completed run (what its ``StopEvent`` carried), read from its
        journal: the same in any process, after any number of recoveries."""
        from workflows.events import StopEvent

        run = await self._own(run_id)
        if run.status.value != "completed":
            raise InvalidRunError(f"run {run_id!r} is {run.status.value}, not completed: it has no result yet")
        records, _ = await self.db.offload(self.ticks.ticks, self.tenant, run_id)
        ending = _replay(self.workflow, records).ending
        if not isinstance(getattr(ending, "result", None), StopEvent):
            raise InvalidRunError(f"run {run_id!r} completed but its journal holds no StopEvent")
        return self._decoded_result(ending.result)

    def _decoded_result(self, event: Any) -> Any:
        """A journaled ``StopEvent``'s result as the run returned it: a custom stop event as
        itself, an agent's output as an ``AgentOutput`` (the journal keeps its fields)."""
        from llama_index.core.agent.workflow.workflow_events import AgentOutput
        from workflows.events import StopEvent

        if type(event) is not StopEvent:
            return event
        if isinstance(event.result, dict) and hasattr(self.workflow, "_start_event_class") \
                and self.workflow._start_event_class.__name__ == "AgentWorkflowStartEvent":
            with contextlib.suppress(Exception):
                return AgentOutput.model_validate(event.result)
        return event.result

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run that is not running elsewhere and run its compensations."""
        await self._own(run_id)
        run = await self.db.offload(self.ledger.claim, self.tenant, run_id, executor=self.executor_id,
                                    lease_seconds=self.lease_seconds, resume=True)
        if run is None:
            raise InvalidRunError(f"run {run_id!r} cannot be cancelled now: it is running elsewhere or has finished")
        await self.db.offload(self.ledger.finish, self.tenant, run, "cancelled")
        await self.db.offload(compensate_run, self.calls, self.tenant, run.thread_id, run_id)
        return await self.db.offload(self.ledger.get, self.tenant, run_id)

    # -- one execution ---------------------------------------------------------------------

    async def _state(self, run_id: str, adapter: InternalRunAdapter) -> str:
        """The run's Context store as JSON. An agent's memory, which LlamaIndex's serializer
        leaves out (its chat store does not serialize), is kept as its messages and comes
        back as a ``ChatMemoryBuffer`` holding them."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "skipping a known unserializable key": kept below
            state: dict[str, Any] = basic_runtime.state_checkpoint(run_id).to_dict()
        store = adapter.get_state_store()
        memory = None if store is None else await store.get(_MEMORY, default=None)
        items = state.get("state_data", {}).get("_data")
        if memory is not None and callable(getattr(memory, "aget_all", None)) and isinstance(items, dict) \
                and _MEMORY not in items:
            messages = [m.model_dump(mode="json") for m in await memory.aget_all()]
            items[_MEMORY] = {"__is_component": True, "qualified_name": _BUFFER,
                              "value": {"chat_history": messages,
                                        "token_limit": getattr(memory, "token_limit", None) or _TOKEN_LIMIT}}
        return json.dumps(state)

    async def _context(self, run: RunRecord) -> tuple[Context | None, Any, int, _Replay]:
        """Where an execution starts: (a context rebuilt from the journal, None) or (None,
        the start event) for a run with nothing journaled; the next tick number; and the
        journal's replay (what ended the run, if something did before its worker died: a
        context restored past its end would start afresh; empty with nothing journaled)."""
        records, state = await self.db.offload(self.ticks.ticks, self.tenant, run.run_id)
        if not records:
            kept = await self.db.offload(self.ledger.input, self.tenant, run.run_id)
            if kept is None:
                raise InvalidRunError(f"run {run.run_id!r} has neither a journal nor its start event")
            return None, _SERIALIZER.deserialize(kept[1].decode()), 0, _Replay(None, None, False, {})
        replay = _replay(self.workflow, records)
        ctx = replay.ctx
        if state is not None:
            snapshot = ctx.to_dict(_SERIALIZER)
            snapshot["state"] = json.loads(state)
            ctx = Context.from_dict(self.workflow, snapshot, serializer=_SERIALIZER)
        return ctx, None, len(records), replay

    async def _execute(self, run: RunRecord, send: Any = None) -> Any:
        attempt = 0
        while True:
            execution = _Execution(self, run, 0)
            handler: Any = None
            beat: asyncio.Task[None] | None = None
            try:
                ctx, start_event, execution.next_seq, replay = await self._context(run)
                asked, execution.done, ending = replay.asked, replay.done, replay.ending
                if ending is not None:  # the run ended before its worker died: only the ledger is behind
                    if not hasattr(ending, "result"):
                        raise ending.exception  # a step's failure (or a halt): ends as it would have
                    await self.db.offload(self.ledger.finish, self.tenant, run, "completed")
                    return self._decoded_result(ending.result)
                self._active[run.run_id] = execution
                beat = asyncio.create_task(self._heartbeat(execution))
                # the runtime keeps each run id's queues until they are collected: a run
                # executed again in this process (a retry, a resume) needs its id free
                getattr(basic_runtime, "_queues", {}).pop(run.run_id, None)
                with self._traced(run):
                    handler = self.workflow.run(ctx=ctx, start_event=start_event, run_id=run.run_id)
                    if send is not None:
                        handler.ctx.send_event(send)
                        send, asked = None, False  # the answer is on its way
                    watcher = asyncio.create_task(self._watch(handler, execution, asked))
                    try:
                        result = await handler
                    finally:
                        watcher.cancel()
                await execution.drain()
                await self.db.offload(execution.flush)
                await self.db.offload(self.ledger.finish, self.tenant, run, "completed")
                return result
            except BaseException as exc:
                if handler is not None and not handler.is_done():
                    await _stop_run(handler)
                if isinstance(exc, asyncio.CancelledError) and execution.stop is None:
                    raise  # the caller cancelled (a cancel the run asked for itself is a pause)
                delay = await self._after_failure(run, execution, exc, attempt)
            finally:
                if beat is not None:
                    beat.cancel()
                self._active.pop(run.run_id, None)
            await asyncio.sleep(delay)
            attempt += 1

    async def _after_failure(self, run: RunRecord, execution: _Execution, exc: BaseException, attempt: int) -> float:
        """How an execution that raised ends: the seconds before a retry, or raise."""
        if execution.lost is not None:
            raise execution.lost from exc
        with contextlib.suppress(LeaseLostError):
            await self.db.offload(execution.flush)
        stop = execution.stop
        if stop is not None and stop[0] in ("budget", "input"):
            reason = f"budget: {stop[1]}" if stop[0] == "budget" else f"waiting for input: {stop[1]}"
            await self.db.offload(self.ledger.pause, self.tenant, run, reason)
            raise RunPausedError(run.run_id, reason) from None
        if stop is not None or is_recoverable(exc, self.recoverable):
            if attempt < self.retries:
                return min(30.0, self.backoff_seconds * 2.0 ** attempt)
            reason = f"{stop[1] if stop else exc} (still failing after {self.retries} retries)"
            await self.db.offload(self.ledger.pause, self.tenant, run, f"recoverable error: {reason}")
            raise RunPausedError(run.run_id, reason) from exc
        await self.db.offload(self.ledger.finish, self.tenant, run, "failed", error=f"{type(exc).__name__}: {exc}")
        await self.db.offload(compensate_run, self.calls, self.tenant, run.thread_id, run.run_id)
        raise exc

    async def _watch(self, handler: Any, execution: _Execution, asked: bool) -> None:
        """Park the run when it waits for a person: it asked (an ``InputRequiredEvent``, now
        or before a crash) and no step is running any more, so nothing happens until an
        answer comes. What it did up to there is journaled; :meth:`resume` with the answer
        goes on, in any process."""
        asking = [asked]

        async def read() -> None:
            async for event in handler.stream_events():
                if isinstance(event, InputRequiredEvent):
                    asking[0] = True

        reader = asyncio.create_task(read())
        try:
            quiet = 0
            while not handler.is_done():
                await asyncio.sleep(0.05)
                if not asking[0] or execution.sending or await handler.ctx.running_steps():
                    quiet = 0
                    continue
                quiet += 1
                if quiet >= 3:  # idle for 0.15 s: waiting for the answer
                    await execution.drain()
                    execution.halt("input", "a person's answer (resume with event=...)")
                    await _stop_run(handler)
                    return
        finally:
            reader.cancel()

    async def _heartbeat(self, execution: _Execution) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.db.offload(self.ledger.heartbeat, self.tenant, execution.run,
                                      lease_seconds=self.lease_seconds)
            except LeaseLostError as exc:
                execution.lost = exc
                return
            except Exception:  # a database hiccup: try again at the next beat
                continue

    @contextlib.contextmanager
    def _traced(self, run: RunRecord) -> Iterator[None]:
        if not self._trace:
            yield
            return
        from sutram_adapters.llama_index.instrumentation import (
            current_instrumentation,
            durable_run_scope,
            instrument,
        )

        if current_instrumentation() is None:
            instrument(self._url, tenant=self.tenant)
        with durable_run_scope(run_id=run.run_id, name=self.name, thread_id=run.thread_id, tenant=self.tenant):
            yield


def durable_workflow(workflow: Any, *, url: str | None = None, tenant: str = "default",
                     **options: Any) -> DurableWorkflow:
    """Wrap a LlamaIndex ``Workflow``, ``FunctionAgent`` or ``AgentWorkflow`` so that each
    run is durable (see :class:`DurableWorkflow` for ``options``)."""
    return DurableWorkflow(workflow, url=url, tenant=tenant, **options)

