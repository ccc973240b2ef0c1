"""Run the demo: a durable agent is SIGKILLed mid-node and recovered, a budget pauses a run
and a resume finishes it, and the recovered run's trace is shown.

1. **Crash and recovery.** A child process runs the agent through ``durable(graph)``; the
   parent SIGKILLs it during the third model call of the ``brief`` node, then polls
   ``runner.recover()`` until the dead worker's lease has expired and the run is resumed
   here. The two calls that completed before the kill are answered from the journal: the
   demo counts the calls made again (zero; LangGraph alone re-runs the whole node).
2. **Budget.** A second run gets a token budget it cannot finish on: it pauses at the first
   model call after the budget is used up, with the reason in the ledger;
   ``runner.resume(run_id, budget=...)`` finishes it without paying for any call twice.
3. **Trace.** The recovered run's trace tree (nodes, model calls with tokens and cost, tools).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage

from sutram_adapters._term import Panel, Styled, Table, Terminal
from sutram_adapters.demo.agent import BRIEF_TOPICS, build_agent
from sutram_adapters.langgraph.durable import DurableRunner, durable
from sutram_adapters.trace_view import render_trace
from sutram_core.config import default_url
from sutram_core.runs import Budget
from sutram_core.tenancy import DEFAULT_TENANT
from sutram_core.traces import open_trace_store

__all__ = ["run_demo", "worker"]

QUESTION = "Where is my order A-1042? I'm in Lisbon."
LEASE_SECONDS = 2.0


def _runner(url: str) -> DurableRunner:
    return durable(build_agent().compile(), url=url, tenant=DEFAULT_TENANT, lease_seconds=LEASE_SECONDS,
                   name="order-agent")


def worker(url: str, thread_id: str) -> None:
    """The child process: run the agent durably on a thread (killed by the parent mid-node)."""
    with _runner(url) as runner:
        runner.invoke({"messages": [HumanMessage(content=QUESTION)]}, thread_id=thread_id, run_id=thread_id)


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_demo(url: str | None = None, console: Terminal | None = None) -> dict[str, Any]:
    """Run the whole demo and print it; return the figures it shows (for tests)."""
    console = console or Terminal()
    url = url or default_url()
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    events_file = Path(tempfile.mkdtemp(prefix="sutram-demo-")) / "events.jsonl"
    os.environ["SUTRAM_DEMO_JOURNAL"] = str(events_file)
    try:
        crash = _crash_and_recover(url, run_id, events_file, console)
        budget = _budget(url, events_file, console)
    finally:
        os.environ.pop("SUTRAM_DEMO_JOURNAL", None)
    spans = _trace(url, run_id, console)
    return {**crash, **budget, "resumed_spans": [(s.name, s.kind, s.checkpoint_id is not None) for s in spans]}


def _crash_and_recover(url: str, run_id: str, events_file: Path, console: Terminal) -> dict[str, Any]:
    console.print(Panel.fit(
        f"[bold]Sutram demo[/] on [cyan]{url}[/]: a LangGraph agent (a scripted chat model priced as gpt-4o-mini, "
        f"2 tools) run by [bold]durable(graph)[/].\nA child process runs it; we SIGKILL it in the middle of the "
        f"[bold]brief[/] node (3 model calls), and recover the run here.", title="1. crash and recovery"))
    with _runner(url):
        pass  # create the schema before the child starts
    child = subprocess.Popen([sys.executable, "-m", "sutram_adapters.cli", "_demo-worker", url, run_id],
                             env={**os.environ})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if sum(e["event"] == "llm_call" for e in _events(events_file)) >= len(BRIEF_TOPICS):
            break  # the third model call of the brief node has started
        if child.poll() is not None:
            raise RuntimeError("the demo worker exited before it could be killed")
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = time.time()
    killed_pid = child.pid
    before = _events(events_file)
    completed = [e["prompt"] for e in before if e["event"] == "llm_done"]
    console.print(f"[red]SIGKILL[/] sent to worker pid {killed_pid} during node [bold]brief[/]: "
                  f"{len(completed)} of its model calls had completed, 1 was in flight.")
    console.print(f"Polling [bold]runner.recover()[/] in pid {os.getpid()} until the worker's lease "
                  f"({LEASE_SECONDS:g} s) expires ...")
    with _runner(url) as runner:
        while not runner.recover():
            time.sleep(0.1)
        run = runner.ledger.get(DEFAULT_TENANT, run_id)
        state = runner.graph.get_state({"configurable": {"thread_id": run_id}})
    answer = str(state.values["messages"][-1].content)
    events = _events(events_file)
    calls_by = Counter((e["prompt"], e["pid"] == killed_pid) for e in events if e["event"] == "llm_call")
    repeated = [p for p in completed if calls_by[(p, False)]]
    in_flight = [e["prompt"] for e in before if e["event"] == "llm_call" and e["prompt"] not in completed]
    table = Table(title="Model calls of the run")
    for col in ("prompt", "worker (killed)", "recovery"):
        table.add_column(col)
    prompts = list(dict.fromkeys(e["prompt"] for e in events if e["event"] == "llm_call"))
    for prompt in prompts:
        killed = calls_by[(prompt, True)]
        again = calls_by[(prompt, False)]
        first = (Styled("made", "green") if prompt in completed else Styled("in flight, lost", "red")) \
            if killed else "-"
        then = (Styled("made again", "red") if prompt in completed else "made") if again else (
            Styled("answered from the journal", "green") if killed else "-")
        table.add_row(prompt, first, then)
    console.print(table)
    with open_trace_store(url) as store:
        starts = [r.start_ns for r in store.runs(DEFAULT_TENANT, thread_id=run_id) if r.status == "ok"]
    waited = starts[0] / 1e9 - killed_at if starts else float("nan")
    console.print(Panel.fit(
        f"Run {run_id} [green]{run.status.value}[/] after {run.attempts} attempts, resumed {waited:.1f} s after "
        f"the kill (lease {LEASE_SECONDS:g} s).\n"
        f"Model calls completed before the crash and made again: [bold]{len(repeated)}[/] "
        f"(LangGraph alone re-runs the brief node whole: {len(completed)}).\n"
        f"Spend: {run.spend.tokens} tokens, ${run.spend.cost_usd:.6f}, {run.spend.steps} steps.\n"
        f"[bold green]Answer:[/] {answer}", title="recovered"))
    return {"run_id": run_id, "completed_before": len(completed), "repeated": len(repeated),
            "in_flight": len(in_flight), "resumed_after_s": waited, "answer": answer,
            "status": run.status.value, "attempts": run.attempts, "killed_pid": killed_pid}


def _budget(url: str, events_file: Path, console: Terminal) -> dict[str, Any]:
    thread = f"demo-budget-{uuid.uuid4().hex[:8]}"
    limit = 120
    console.print(Panel.fit(f"A new run with [bold]Budget(max_tokens={limit})[/]: it pauses before the model call "
                            "that would overspend; a resume with a larger budget finishes it.", title="2. budget"))
    start = len(_events(events_file))
    with _runner(url) as runner:
        runner.invoke({"messages": [HumanMessage(content=QUESTION)]}, thread_id=thread, run_id=thread,
                      budget=Budget(max_tokens=limit))
        paused = runner.ledger.get(DEFAULT_TENANT, thread)
        console.print(f"Run {thread}: [yellow]{paused.status.value}[/] ({paused.pause_reason}); spent "
                      f"{paused.spend.tokens} tokens, ${paused.spend.cost_usd:.6f}.")
        console.print("runner.resume(run_id, budget=Budget(max_tokens=5_000)) ...")
        runner.resume(thread, budget=Budget(max_tokens=5_000))
        done = runner.ledger.get(DEFAULT_TENANT, thread)
    made = Counter(e["prompt"] for e in _events(events_file)[start:] if e["event"] == "llm_call")
    twice = sum(1 for n in made.values() if n > 1)
    console.print(f"Run {thread}: [green]{done.status.value}[/], {done.spend.tokens} tokens in all; "
                  f"{sum(made.values())} model calls, {twice} paid twice.")
    return {"budget_paused": paused.status.value, "budget_reason": paused.pause_reason,
            "budget_final": done.status.value, "budget_paid_twice": twice}


def _trace(url: str, run_id: str, console: Terminal) -> list[Any]:
    with open_trace_store(url) as store:
        traced = store.runs(DEFAULT_TENANT, thread_id=run_id)
        finished = [r for r in traced if r.status == "ok"]
        spans = store.run_spans(DEFAULT_TENANT, finished[0].run_id) if finished else []
    console.print(Panel.fit("The recovered execution's trace (the killed worker's stays open: it never ended).",
                            title="3. trace"))
    if spans:
        render_trace(spans, console)
    else:
        console.print("[red]No trace was recorded[/]: see the errors logged above.")
    return spans
