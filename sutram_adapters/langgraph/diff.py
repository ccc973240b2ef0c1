"""``sutram diff THREAD_A THREAD_B``: how two threads (typically a thread and its fork) diverged.

Three views, all read from the one database:

- **state**: the channels whose latest values differ, and the first step at which the two
  checkpoint histories disagree;
- **calls**: each journaled call (model call or durable step) of B, marked ``replayed``
  when A made the very same call at the same place of the graph (same inputs: B got A's
  answer from the journal, at no cost) or ``new`` when B paid for it; A's calls made after
  the fork point that B never made are ``only in A``;
- **cost**: tokens and USD each thread paid for, and what B replayed for free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sutram_adapters.langgraph.durable import FORK_KEY
from sutram_adapters.langgraph.saver import SutramSaver
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.journal import SqlCallJournal
from sutram_core.errors import InvalidRunError
from sutram_core.runs import JournalEntry, JournalKey, ns_shape

__all__ = ["CallRow", "ThreadDiff", "diff_threads", "plain"]


def plain(value: Any) -> Any:
    """A JSON-safe rendering of a state value (messages and pydantic models as their fields)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        fields = dump()
        # a message's id is assigned per run; two runs that said the same thing are equal
        return plain({k: v for k, v in fields.items() if k != "id"} if "content" in fields else fields)
    return repr(value)


@dataclass
class CallRow:
    """One journaled call, as the diff shows it."""

    node: str
    index: int
    kind: str
    name: str
    status: str  # "replayed", "new", "only in A", "shared" (before the fork, in both)
    tokens: int
    cost_usd: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ThreadDiff:
    """What :func:`diff_threads` found."""

    thread_a: str
    thread_b: str
    forked_from: dict[str, Any] | None
    first_divergent_step: int | None
    state: dict[str, tuple[Any, Any]]  # channel -> (A's value, B's value), differing channels only
    calls: list[CallRow] = field(default_factory=list)
    cost: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"thread_a": self.thread_a, "thread_b": self.thread_b, "forked_from": self.forked_from,
                "first_divergent_step": self.first_divergent_step,
                "state": {k: {"a": a, "b": b} for k, (a, b) in self.state.items()},
                "calls": [c.as_dict() for c in self.calls], "cost": self.cost}


def _history(saver: SutramSaver, thread_id: str) -> list[tuple[int, str, dict[str, Any], dict[str, Any], str]]:
    """(step, checkpoint id, values, metadata, ts) of a thread's root checkpoints, oldest first."""
    out = []
    for saved in saver.list({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}):
        md = dict(saved.metadata or {})
        out.append((int(str(md.get("step", -1))), saved.config["configurable"]["checkpoint_id"],
                    plain(saved.checkpoint["channel_values"]), md, saved.checkpoint["ts"]))
    return out[::-1]


def _ts_micros(ts: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(ts).timestamp() * 1_000_000)


def diff_threads(url: str | None, tenant: str, thread_a: str, thread_b: str) -> ThreadDiff:
    """Compare two threads of ``tenant`` (B is usually a fork of A)."""
    with SutramSaver.from_url(url, tenant=tenant) as saver:
        hist_a, hist_b = _history(saver, thread_a), _history(saver, thread_b)
    for thread, hist in ((thread_a, hist_a), (thread_b, hist_b)):
        if not hist:
            raise InvalidRunError(f"thread {thread!r} has no checkpoints in tenant {tenant!r}: check the id "
                                  "(sutram runs --tenant T lists runs with their threads)")
    forked_from = next((md[FORK_KEY] for *_, md, _ts in hist_b if isinstance(md.get(FORK_KEY), dict)), None)
    last_a, last_b = hist_a[-1][2], hist_b[-1][2]
    state = {k: (last_a.get(k), last_b.get(k)) for k in sorted(set(last_a) | set(last_b))
             if not k.startswith("branch:") and last_a.get(k) != last_b.get(k)}
    by_step_a = {step: values for step, _, values, _, _ in hist_a}
    first = next((step for step, _, values, _, _ in hist_b
                  if step in by_step_a and by_step_a[step] != values), None)
    if first is None and state:
        first = next((step for step, *_ in hist_b if step not in by_step_a), hist_b[-1][0])
    db = Database(url)
    try:
        journal = SqlCallJournal(db)
        calls_a, calls_b = journal.entries(tenant, thread_a), journal.entries(tenant, thread_b)
    finally:
        db.close()
    # A's calls before the fork point are history B shares (its first checkpoint holds them)
    fork_ts = _ts_micros(hist_b[0][4]) if forked_from and forked_from.get("thread_id") == thread_a else None
    calls, cost = _align(calls_a, calls_b, fork_ts)
    return ThreadDiff(thread_a, thread_b, forked_from, first, state, calls, cost)


def _align(calls_a: list[tuple[JournalKey, JournalEntry]], calls_b: list[tuple[JournalKey, JournalEntry]],
           fork_ts: int | None) -> tuple[list[CallRow], dict[str, dict[str, float]]]:
    def where(key: JournalKey, entry: JournalEntry) -> tuple[str, int, str]:
        return ns_shape(key.checkpoint_ns), key.call_index, entry.input_hash

    def row(key: JournalKey, entry: JournalEntry, status: str) -> CallRow:
        return CallRow(ns_shape(key.checkpoint_ns), key.call_index, entry.kind, entry.name, status, entry.tokens,
                       entry.cost_usd)

    after_fork = [(k, e) for k, e in calls_a if fork_ts is None or e.created_at >= fork_ts]
    unmatched: dict[tuple[str, int, str], list[tuple[JournalKey, JournalEntry]]] = {}
    for k, e in after_fork:
        unmatched.setdefault(where(k, e), []).append((k, e))
    rows: list[CallRow] = []
    total = {name: {"calls": 0.0, "tokens": 0.0, "cost_usd": 0.0} for name in ("a", "b_new", "b_replayed")}

    def add(bucket: str, entry: JournalEntry) -> None:
        total[bucket]["calls"] += 1
        total[bucket]["tokens"] += entry.tokens
        total[bucket]["cost_usd"] += entry.cost_usd

    for _, e in calls_a:
        if e.kind == "llm" or e.kind == "step":
            add("a", e)
    diverged: set[tuple[str, str]] = set()  # B's tasks that stopped replaying (as CallScope does)
    for k, e in sorted(calls_b, key=lambda ke: (ke[1].created_at, ke[0].call_index)):
        if e.kind not in ("llm", "step"):
            continue
        task = (k.checkpoint_ns, k.task_id)
        match = None if task in diverged else unmatched.get(where(k, e))
        if not match:
            diverged.add(task)
        if match:
            match.pop(0)
            rows.append(row(k, e, "replayed"))
            add("b_replayed", e)
        else:
            rows.append(row(k, e, "new"))
            add("b_new", e)
    rows += [row(k, e, "only in A") for waiting in unmatched.values() for k, e in waiting
             if e.kind in ("llm", "step")]
    return rows, total
