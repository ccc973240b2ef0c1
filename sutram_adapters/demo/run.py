"""Run the demo: start the agent in a child process, SIGKILL it mid-run, resume it here.

``durability="sync"`` makes LangGraph write each step's checkpoint before starting the
next step, so everything that finished before the kill is on disk. Both processes trace
into the same database; the demo ends by printing the thread's runs and the resumed
run's trace tree, each node linked to the checkpoint it produced.
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
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from sutram_adapters.demo.agent import build_agent
from sutram_adapters.langchain import SutramCallbackHandler
from sutram_adapters.langgraph import SutramSaver
from sutram_adapters.trace_view import render_runs, render_trace
from sutram_core.config import default_url
from sutram_core.tenancy import DEFAULT_TENANT
from sutram_core.traces import open_trace_store

__all__ = ["run_demo", "worker"]

QUESTION = "Where is my order A-1042? I'm in Lisbon."
KILL_AFTER_NODES = 2  # kill while the third node is running


def worker(url: str, thread_id: str) -> None:
    """The child process: run the agent on a thread (killed by the parent mid-run)."""
    with SutramSaver.from_url(url) as saver:
        graph = build_agent().compile(checkpointer=saver)
        graph.invoke({"messages": [HumanMessage(content=QUESTION)]},
                     {"configurable": {"thread_id": thread_id}, "callbacks": [SutramCallbackHandler(url)]},
                     durability="sync")


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_demo(url: str | None = None, console: Console | None = None) -> dict[str, Any]:
    """Run the whole demo and print it; return the figures it shows (for tests)."""
    console = console or Console()
    url = url or default_url()
    thread_id = f"demo-{uuid.uuid4().hex[:8]}"
    journal = Path(tempfile.mkdtemp(prefix="sutram-demo-")) / "journal.jsonl"
    env = {**os.environ, "SUTRAM_DEMO_JOURNAL": str(journal)}
    console.print(Panel.fit(
        f"[bold]Sutram demo[/]: a LangGraph agent (scripted chat model, 2 tools) on [cyan]{url}[/]\n"
        f"thread [cyan]{thread_id}[/]. A child process runs it; we SIGKILL it mid-run, then resume.",
        title="crash and resume"))

    with SutramSaver.from_url(url):
        pass  # create the schema before the child starts
    child = subprocess.Popen([sys.executable, "-m", "sutram_adapters.cli", "_demo-worker", url, thread_id], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ends = [e for e in _events(journal) if e["event"] == "node_end"]
        starts = [e for e in _events(journal) if e["event"] == "node_start"]
        if len(ends) >= KILL_AFTER_NODES and len(starts) > KILL_AFTER_NODES:
            break
        if child.poll() is not None:
            raise RuntimeError("the demo worker exited before it could be killed")
        time.sleep(0.02)
    time.sleep(0.1)  # let the running node get into its model or tool call
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_pid = child.pid
    console.print(f"[red]SIGKILL[/] sent to worker pid {killed_pid} while node "
                  f"[bold]{starts[-1]['node']}[/] was running.\n")

    with SutramSaver.from_url(url) as saver:
        graph = build_agent().compile(checkpointer=saver)
        config: dict[str, Any] = {"configurable": {"thread_id": thread_id}}
        before = graph.get_state(config)
        console.print(f"Last checkpoint on disk: step {before.metadata['step']}, next node(s): "
                      f"[bold]{', '.join(before.next)}[/]. Resuming in this process (pid {os.getpid()}) ...")
        os.environ["SUTRAM_DEMO_JOURNAL"] = str(journal)
        handler = SutramCallbackHandler(url)
        try:
            result = graph.invoke(None, {**config, "callbacks": [handler]}, durability="sync")
        finally:
            os.environ.pop("SUTRAM_DEMO_JOURNAL", None)
            handler.flush()
        history = list(graph.get_state_history(config))

    events = _events(journal)
    runs = _node_runs(events, killed_pid)
    completed_before = [r for r in runs if r["pid"] == killed_pid and r["finished"]]
    repeated = [r for r in runs if r["pid"] != killed_pid and r["finished"] and any(
        b["step"] == r["step"] for b in completed_before)]
    table = Table(title="Node executions", show_lines=False)
    for col in ("#", "node", "process", "outcome"):
        table.add_column(col)
    for r in runs:
        proc = "worker (killed)" if r["pid"] == killed_pid else "resume"
        outcome = ("[green]done[/]" if r["finished"] else "[red]killed mid-node[/]")
        if r["pid"] != killed_pid and not any(b["step"] == r["step"] for b in completed_before):
            outcome += " (first completion)"
        table.add_row(str(r["step"]), r["node"], proc, outcome)
    console.print(table)

    hist = Table(title=f"Checkpoint history of {thread_id} (newest first)")
    for col in ("step", "source", "next", "messages", "checkpoint id"):
        hist.add_column(col)
    for s in history:
        hist.add_row(str(s.metadata.get("step")), str(s.metadata.get("source")), ", ".join(s.next) or "-",
                     str(len(s.values.get("messages", []))), s.config["configurable"]["checkpoint_id"])
    console.print(hist)
    answer = result["messages"][-1].content
    llm_calls = [e for e in events if e["event"] == "llm_call"]
    in_flight = sum(1 for e in llm_calls if e["pid"] == killed_pid) - sum(
        1 for r in completed_before if r["node"] == "agent")
    tokens = sum(m.usage_metadata["total_tokens"] for m in result["messages"] if getattr(m, "usage_metadata", None))
    console.print(Panel.fit(
        f"[bold green]Answer:[/] {answer}\n"
        f"Completed before the crash and not repeated: [bold]{len(completed_before)}[/] node(s); "
        f"repeated after resume: [bold]{len(repeated)}[/].\n"
        f"Model calls made in all: {len(llm_calls)}, of which {in_flight} was in flight when the worker was "
        f"killed and was made again ({tokens} tokens reported in the final state).",
        title="resumed"))
    with open_trace_store(url) as store:
        traced = store.runs(DEFAULT_TENANT, thread_id=thread_id)
        spans = store.run_spans(DEFAULT_TENANT, traced[0].run_id) if traced else []
    if traced:
        render_runs(traced, console)
        console.print("The killed worker's run stays [yellow]running[/]: it never ended. "
                      "The resumed run's trace:")
        render_trace(spans, console)
    else:
        console.print("[red]No trace was recorded[/]: see the errors logged above.")
    return {"thread_id": thread_id, "completed_before": len(completed_before), "repeated": len(repeated),
            "answer": answer, "checkpoints": len(history), "killed_pid": killed_pid,
            "llm_calls": len(llm_calls), "llm_calls_in_flight": in_flight,
            "traced_runs": [(r.status, r.spans) for r in traced],
            "resumed_spans": [(s.name, s.kind, s.checkpoint_id is not None) for s in spans]}


def _node_runs(events: list[dict[str, Any]], killed_pid: int) -> list[dict[str, Any]]:
    """Pair node starts with ends; number each logical step (a resumed re-run keeps its number)."""
    runs: list[dict[str, Any]] = []
    step = 0
    for e in events:
        if e["event"] == "node_start":
            if runs and not runs[-1]["finished"] and runs[-1]["pid"] == killed_pid and e["pid"] != killed_pid:
                step -= 1  # the node the kill interrupted runs again as the same step
            step += 1
            runs.append({"step": step, "node": e["node"], "pid": e["pid"], "finished": False})
        elif e["event"] == "node_end" and runs:
            runs[-1]["finished"] = True
    return runs
