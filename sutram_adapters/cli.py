"""The ``sutram`` command.

    sutram demo [--url URL]        crash an agent mid-run and resume it from its checkpoint
    sutram history THREAD [--url URL] [--tenant T]   a thread's checkpoints, newest first
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

__all__ = ["main"]


def _history(url: str | None, thread_id: str, tenant: str | None) -> int:
    from sutram_adapters.langgraph import SutramSaver

    console = Console()
    with SutramSaver.from_url(url, tenant=tenant) as saver:
        table = Table(title=f"checkpoints of {thread_id}")
        for col in ("checkpoint id", "ns", "step", "source", "parent", "writes"):
            table.add_column(col)
        n = 0
        for t in saver.list({"configurable": {"thread_id": thread_id}}):
            n += 1
            parent = t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else "-"
            table.add_row(t.config["configurable"]["checkpoint_id"], t.config["configurable"]["checkpoint_ns"] or "(root)",
                          str(t.metadata.get("step")), str(t.metadata.get("source")), parent, str(len(t.pending_writes or [])))
        console.print(table if n else f"no checkpoints for thread {thread_id!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``sutram`` command with ``argv`` (default: the process arguments)."""
    parser = argparse.ArgumentParser(prog="sutram", description="Sutram: durable, remembering, traceable AI workflows.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="kill an agent mid-run and resume it from its last checkpoint")
    demo.add_argument("--url", default=None, help="database URL (default: SUTRAM_URL or ./.sutram/sutram.db)")
    hist = sub.add_parser("history", help="list a thread's checkpoints")
    hist.add_argument("thread_id")
    hist.add_argument("--url", default=None)
    hist.add_argument("--tenant", default=None)
    worker = sub.add_parser("_demo-worker", help=argparse.SUPPRESS)
    worker.add_argument("url")
    worker.add_argument("thread_id")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from sutram_adapters.demo import run_demo

        run_demo(args.url)
        return 0
    if args.command == "history":
        return _history(args.url, args.thread_id, args.tenant)
    if args.command == "_demo-worker":
        from sutram_adapters.demo.run import worker as run_worker

        run_worker(args.url, args.thread_id)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
