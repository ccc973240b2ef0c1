"""The call journal: each completed LLM call and durable step, recorded once, answered on replay.

A call is identified by where it happened, not by what it asked: the tenant, the thread,
the checkpoint namespace, the task (LangGraph's task id, stable when a node is retried
from its checkpoint) and its position among that task's journaled calls. When a crashed
node runs again, its first call finds the first entry, its second call the second, and so
on: calls that completed before the crash are answered from the journal instead of being
made (and paid for) again. The input's hash is kept with each entry, so a replay whose
inputs differ (a fork that changed the state) is detected and the call is made anew.

:func:`durable_step` journals any function; :class:`CallScope` is what a runner opens
around a task (``with CallScope(journal, tenant=..., thread_id=..., task_id=...):``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import orjson

from sutram_core.errors import DatabaseUnavailableError, InvalidRunError

__all__ = [
    "CallJournal",
    "CallScope",
    "JournalEntry",
    "JournalKey",
    "compensation",
    "current_scope",
    "durable_step",
    "idempotency_key",
    "input_hash",
    "journaled_call",
    "ns_shape",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class JournalKey:
    """Where a call happened: thread, checkpoint namespace, task, and its index in the task."""

    tenant_id: str
    thread_id: str
    checkpoint_ns: str
    task_id: str
    call_index: int

    def idempotency_key(self) -> str:
        """A stable key to hand to the outside world (payment APIs, e-mail senders...)."""
        raw = f"{self.tenant_id}|{self.thread_id}|{self.checkpoint_ns}|{self.task_id}|{self.call_index}"
        return "sutram-" + hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass
class JournalEntry:
    """A recorded call: its kind ("llm" or "step"), name, input hash and JSON output."""

    kind: str
    name: str
    input_hash: str
    output: str
    run_id: str | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    compensate: str | None = None  # the registered compensation that undoes this step
    created_at: int = 0  # microseconds since the epoch (as read back; 0 before it is stored)


class CallJournal(Protocol):
    """Storage of journal entries; the first entry written for a key is kept."""

    def get(self, key: JournalKey) -> JournalEntry | None: ...

    def put(self, key: JournalKey, entry: JournalEntry) -> JournalEntry: ...

    def task_entries(self, tenant: str, thread_id: str, checkpoint_ns: str,
                     task_id: str) -> dict[int, JournalEntry]: ...

    def find(self, tenant: str, thread_id: str, shape: str, call_index: int,
             digest: str) -> JournalEntry | None: ...

    def entries(self, tenant: str, thread_id: str) -> list[tuple[JournalKey, JournalEntry]]: ...


def ns_shape(checkpoint_ns: str) -> str:
    """A checkpoint namespace without its task ids ("plan:1f2e|search:9a8b" -> "plan|search"):
    where a call happened in the graph, the same in a thread and in its forks."""
    return "|".join(part.partition(":")[0] for part in checkpoint_ns.split("|"))


def input_hash(*parts: Any) -> str:
    """A stable hash of a call's inputs (JSON; objects that JSON cannot hold by their repr)."""
    blob = orjson.dumps(parts, default=repr, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(blob).hexdigest()


class CallScope:
    """The journal context of one task: numbers the task's calls in the order they are made.

    Open one around a task (a graph node run); calls journaled inside it get consecutive
    indexes. Scopes nest per context (threads and asyncio tasks each see their own).
    """

    def __init__(self, journal: CallJournal, *, tenant: str, thread_id: str, task_id: str,
                 checkpoint_ns: str = "", run_id: str | None = None, origins: tuple[str, ...] = (),
                 before_call: Callable[[], None] | None = None,
                 after_call: Callable[[int, float], None] | None = None,
                 tokens_left: Callable[[], int | None] | None = None) -> None:
        self.journal = journal
        # a runner's hooks around calls that are really made (not replayed): the budget check
        # before, the spend (tokens, USD) after, and the tokens the run's budget has left
        # (a model that takes an output limit is given no more)
        self.before_call = before_call
        self.after_call = after_call
        self.tokens_left = tokens_left
        self.tenant, self.thread_id, self.task_id = tenant, thread_id, task_id
        self.checkpoint_ns, self.run_id = checkpoint_ns, run_id
        # a fork's ancestor threads, nearest first: their calls answer the fork's until a
        # call's inputs differ (then the task has diverged and calls are made anew)
        self.origins = origins
        self.diverged = False
        self._known: dict[int, JournalEntry] | None = None  # the task's entries, read once
        self._next = 0
        self._lock = threading.Lock()
        self._token: contextvars.Token[CallScope | None] | None = None
        self.replayed = 0  # calls answered from the journal
        self.recorded = 0  # calls made and recorded

    def next_key(self) -> JournalKey:
        """The key of the task's next journaled call."""
        with self._lock:
            index, self._next = self._next, self._next + 1
        return JournalKey(self.tenant, self.thread_id, self.checkpoint_ns, self.task_id, index)

    def recall(self, key: JournalKey, kind: str, digest: str, name: str | None = None) -> JournalEntry | None:
        """The recorded result of the call at ``key`` if it was the same call (same kind, name
        and input hash): from this thread's journal, else, in a fork that has not diverged,
        from the same place in an ancestor thread (then copied into this thread's journal)."""
        if self._known is None:
            # one read per task: a task is run by one worker at a time (its run's lease), so
            # what it records later is known here; a racing writer loses at put (first wins)
            self._known = self.journal.task_entries(self.tenant, self.thread_id, self.checkpoint_ns, self.task_id)
        found = self._known.get(key.call_index)
        if found is not None:
            if found.kind == kind and found.input_hash == digest and (name is None or found.name == name):
                return found
            self.diverged = True  # same position, different call: the task changed
            return None
        if self.diverged or not self.origins:
            return None
        shape = ns_shape(self.checkpoint_ns)
        for origin in self.origins:
            inherited = self.journal.find(self.tenant, origin, shape, key.call_index, digest)
            if inherited is not None and inherited.kind == kind and (name is None or inherited.name == name):
                return self.journal.put(key, JournalEntry(
                    inherited.kind, inherited.name, inherited.input_hash, inherited.output, run_id=self.run_id,
                    tokens=inherited.tokens, cost_usd=inherited.cost_usd, compensate=inherited.compensate))
        self.diverged = True
        return None

    def lookup(self, kind: str, digest: str, name: str | None = None) -> tuple[JournalKey, JournalEntry | None]:
        """Take the task's next call position: its recorded result if this call was made
        before (counted as replayed), else None after the runner's pre-call check (a budget
        may pause the run here, before a model call is made)."""
        key = self.next_key()
        found = self.recall(key, kind, digest, name)
        if found is not None:
            self.replayed += 1
        elif kind == "llm" and self.before_call is not None:
            self.before_call()
        return key, found

    def record(self, key: JournalKey, entry: JournalEntry) -> JournalEntry:
        """Record a call just made (a model call's tokens and cost go to the runner's spend);
        return the entry kept (another worker's, if it recorded this very call first).

        The call is paid for by now and its result exists only in this process: if the
        database is away, keep trying for ``SUTRAM_JOURNAL_HOLD_SECONDS`` (60 by default)
        rather than drop it, which would have the retried task make the call again. A put
        is first-wins, so one whose commit was cut off and then repeated is harmless."""
        kept = _put_holding_on(self.journal, key, entry)
        self.recorded += 1
        if entry.kind == "llm" and self.after_call is not None:
            self.after_call(entry.tokens, entry.cost_usd)
        return kept

    def __enter__(self) -> CallScope:
        self._token = _SCOPE.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _SCOPE.reset(self._token)
            self._token = None


def _put_holding_on(journal: CallJournal, key: JournalKey, entry: JournalEntry) -> JournalEntry:
    """``journal.put``, retried while the database stays unavailable, for up to the hold time."""
    deadline = time.monotonic() + float(os.environ.get("SUTRAM_JOURNAL_HOLD_SECONDS", "60"))
    while True:
        try:
            return journal.put(key, entry)
        except DatabaseUnavailableError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


_SCOPE: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("sutram_call_scope", default=None)
_KEY: contextvars.ContextVar[JournalKey | None] = contextvars.ContextVar("sutram_call_key", default=None)


_BUSY: contextvars.ContextVar[bool] = contextvars.ContextVar("sutram_in_journaled_call", default=False)


def current_scope() -> CallScope | None:
    """The open :class:`CallScope`, if any (None inside a journaled call: what a journaled
    call does is covered by its own entry, so calls it makes are not journaled again)."""
    return None if _BUSY.get() else _SCOPE.get()


@contextlib.contextmanager
def journaled_call() -> Iterator[None]:
    """Mark the body as the inside of a journaled call (see :func:`current_scope`)."""
    token = _BUSY.set(True)
    try:
        yield
    finally:
        _BUSY.reset(token)


def idempotency_key() -> str | None:
    """Inside a :func:`durable_step`: the step's stable idempotency key (else None)."""
    key = _KEY.get()
    return key.idempotency_key() if key is not None else None


def _encode(value: Any, name: str) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise InvalidRunError(
            f"durable step {name!r} returned a value JSON cannot hold ({exc}); return dicts, lists, "
            "strings, numbers, booleans or None"
        ) from exc


_COMPENSATIONS: dict[str, Callable[[Any], Any]] = {}


def compensation(step_name: str) -> Callable[[Any], Any] | None:
    """The compensation registered for a durable step's name (see ``durable_step(compensate=)``)."""
    return _COMPENSATIONS.get(step_name)


def durable_step(fn: F | None = None, *, name: str | None = None,
                 compensate: Callable[[Any], Any] | None = None) -> Any:
    """Journal a function: inside a :class:`CallScope`, each call runs once; a replay of the
    task gets the recorded result instead of running it again. Outside a scope the function
    simply runs. Results must be JSON values. The step's idempotency key is available as
    :func:`idempotency_key` while it runs (pass it to the outside world).

    >>> @durable_step
    ... def charge(order_id: str, amount: int) -> dict:
    ...     return {"charged": amount}
    >>> charge("o1", 5)
    {'charged': 5}

    A step's result is what its JSON round trip gives (a tuple comes back as a list), on the
    first run and on every replay alike. ``compensate=undo`` registers ``undo(result)``: when
    a durable run is cancelled or fails for good, the compensations of its completed steps
    run in reverse order, each exactly once.
    """
    def wrap(func: F) -> F:
        step_name = name or f"{func.__module__}.{func.__qualname__}"
        if compensate is not None:
            _COMPENSATIONS[step_name] = compensate

        def lookup(scope: CallScope, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> tuple[JournalKey, str, JournalEntry | None]:
            digest = input_hash(step_name, args, kwargs)
            key, found = scope.lookup("step", digest, step_name)
            return key, digest, found

        def record(scope: CallScope, key: JournalKey, digest: str, result: Any) -> Any:
            # the caller gets the value as a replay would give it (JSON round trip), so the
            # first run and every replay see the same thing; the first recorded entry wins
            encoded = _encode(result, step_name)
            kept = scope.record(key, JournalEntry("step", step_name, digest, encoded, run_id=scope.run_id,
                                                  compensate=step_name if compensate is not None else None))
            # another worker recorded this very call first: its result is the one that counts
            return orjson.loads(kept.output if kept.input_hash == digest else encoded)

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def arun(*args: Any, **kwargs: Any) -> Any:
                scope = current_scope()
                if scope is None:
                    return await func(*args, **kwargs)
                key, digest, found = lookup(scope, args, kwargs)
                if found is not None:
                    return orjson.loads(found.output)
                token = _KEY.set(key)
                try:
                    with journaled_call():
                        result = await func(*args, **kwargs)
                finally:
                    _KEY.reset(token)
                return record(scope, key, digest, result)

            return cast(F, arun)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            scope = current_scope()
            if scope is None:
                return func(*args, **kwargs)
            key, digest, found = lookup(scope, args, kwargs)
            if found is not None:
                return orjson.loads(found.output)
            token = _KEY.set(key)
            try:
                with journaled_call():
                    result = func(*args, **kwargs)
            finally:
                _KEY.reset(token)
            return record(scope, key, digest, result)

        return cast(F, run)

    return wrap(fn) if fn is not None else wrap


def compensate_run(journal: CallJournal, tenant: str, thread_id: str, run_id: str) -> list[str]:
    """Run the compensations of the run's completed durable steps, newest first, each
    exactly once (a compensation that already ran is skipped); return the steps undone."""
    done: list[str] = []
    steps = [(k, e) for k, e in journal.entries(tenant, thread_id)
             if e.run_id == run_id and e.kind == "step" and e.compensate]
    for key, entry in reversed(steps):
        marker = JournalKey(tenant, thread_id, key.checkpoint_ns, f"undo:{key.task_id}", key.call_index)
        if journal.get(marker) is not None:
            continue
        undo = compensation(entry.compensate or "")
        if undo is None:
            raise InvalidRunError(f"no compensation registered for step {entry.compensate!r}: import the module "
                                  "that defines it before compensating")
        undo(orjson.loads(entry.output))
        journal.put(marker, JournalEntry("undo", entry.name, entry.input_hash, "null", run_id=run_id))
        done.append(entry.name)
    return done
