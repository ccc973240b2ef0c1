"""Tracing benchmark: the time SutramCallbackHandler adds per span, against the Langfuse
LangChain callback handler and the LangSmith tracer, in one process on the same graph.

    python bench/tracing.py            # full run (about 6 minutes on 2 cores)
    python bench/tracing.py --quick    # fewer invocations and rounds
    python bench/tracing.py --smoke    # tiny: only checks that it runs (the tests do this)

Workload: a 5-node LangGraph StateGraph; each node calls a fake chat model (which reports
token usage), runs a tool and an output parser: 21 spans per invocation. Every handler
instance is reused across all invocations, as an app would. Peers are pointed at a
Langfuse is pointed at a closed local port (its exports fail fast); LangSmith at an HTTP
server in this process that answers 200 (pointed at a closed port its client retries for
tens of seconds). Nothing leaves the machine. Sutram writes to a SQLite file (WAL,
synchronous=NORMAL). After each timed segment every handler is flushed, untimed, so
that no handler's background work runs during another one's measurement.

Figures:
  added time per span = (time of a block of 5 invocations with the handler, plus the CPU
      time of the handler's flush after it - the same block without a handler) / spans,
      also for a handler whose callbacks do nothing ("noop"): LangChain's own dispatch
      cost once any handler is attached, which every handler pays;
      sync (invoke) and async (ainvoke, handlers as configured by their authors).
      150 rounds, each with every handler once in a rotating order; each block is paired
      with its round's no-handler block, and the median is printed with the quartiles.
      The flush's CPU counts whatever a handler left to its background thread (for
      Sutram: its whole writer, JSON, redaction, audit digest and SQLite insert).
  memory growth after 1,000 invocations with one reused handler (tracemalloc, after
      a warm-up of 50 invocations and a flush).
  100,000 spans written through the tracer (spans/s), and ``sutram trace`` on a run of
      5,000 spans (in process: query + render; and the whole command in a subprocess).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import itertools
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from sutram_adapters.langchain import SutramCallbackHandler
from sutram_core.traces import Span, SpanKind, Tracer
from tests.fake_models import EchoChatModel

CLOSED = "http://127.0.0.1:9"  # discard port: connections are refused


class State(TypedDict):
    text: str


@tool
def word_count(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


def build_graph(asynchronous: bool = False) -> Any:
    """The 5-node graph; async node functions for the ainvoke figures (a sync node
    under ainvoke would hop to a thread pool, which is not what is measured here)."""
    model = EchoChatModel()
    parser = StrOutputParser()

    def make(name: str) -> Callable[[State], Any]:
        def step(state: State) -> dict[str, Any]:
            reply = model.invoke(f"{name}: {state['text'][-40:]}")
            word_count.invoke({"text": str(reply.content)})
            return {"text": parser.invoke(reply)}

        async def astep(state: State) -> dict[str, Any]:
            reply = await model.ainvoke(f"{name}: {state['text'][-40:]}")
            await word_count.ainvoke({"text": str(reply.content)})
            return {"text": await parser.ainvoke(reply)}

        return astep if asynchronous else step

    g = StateGraph(State)
    names = ["n1", "n2", "n3", "n4", "n5"]
    for n in names:
        g.add_node(n, make(n))
    g.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b)
    g.add_edge(names[-1], END)
    return g.compile()


def _sutram(db: Path) -> tuple[Any, Callable[[], None]]:
    tracer = Tracer.from_url(f"sqlite:///{db}")
    return SutramCallbackHandler(tracer=tracer), tracer.flush


def _langfuse(db: Path) -> tuple[Any, Callable[[], None]]:
    from langfuse import Langfuse
    from langfuse.langchain import CallbackHandler
    from opentelemetry.sdk.trace import TracerProvider

    client = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", host=CLOSED,
                      tracer_provider=TracerProvider(), timeout=1)
    return CallbackHandler(public_key="pk-lf-bench"), client.flush


class _Sink:
    """An HTTP server in this process that answers every request with 200 and ``{}``:
    LangSmith's uploads succeed without leaving the machine (pointed at a closed port,
    its client retries for tens of seconds per flush)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Answer(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _ok(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PATCH = do_PUT = _ok

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _langsmith(db: Path) -> tuple[Any, Callable[[], None]]:
    from langchain_core.tracers import LangChainTracer
    from langsmith import Client

    client = Client(api_url=_Sink().url, api_key="lsv2_bench", auto_batch_tracing=True)

    def settle() -> None:
        # client.flush() joins the tracing queue and can wait forever once the client's
        # background thread has stopped; wait for the queue to empty, at most 5 s
        queue = getattr(client, "tracing_queue", None)
        deadline = time.monotonic() + 5
        while queue is not None and queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    return LangChainTracer(client=client, project_name="bench"), settle


class _Noop(BaseCallbackHandler):
    """A handler whose callbacks do nothing: what LangChain's own dispatch costs per span
    once any handler is attached (a floor every handler pays; not a peer)."""

    run_inline = True

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None: ...
    def on_chain_end(self, *args: Any, **kwargs: Any) -> None: ...
    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None: ...
    def on_llm_end(self, *args: Any, **kwargs: Any) -> None: ...
    def on_tool_start(self, *args: Any, **kwargs: Any) -> None: ...
    def on_tool_end(self, *args: Any, **kwargs: Any) -> None: ...


def _noop(db: Path) -> tuple[Any, Callable[[], None]]:
    return _Noop(), lambda: None


BUILDERS = {"sutram": _sutram, "langfuse": _langfuse, "langsmith": _langsmith, "noop": _noop}


def make_handlers(db: Path, only: str | None = None) -> dict[str, tuple[Any, Callable[[], None]]]:
    """name -> (handler, flush); ``only`` builds just that one."""
    for name in ("langfuse", "langsmith", "opentelemetry", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    out: dict[str, tuple[Any, Callable[[], None]]] = {}
    for name, build in BUILDERS.items():
        if only in (None, name):
            try:
                out[name] = build(db)
            except ImportError as exc:  # pragma: no cover - a peer not installed
                print(f"{name} not installed ({exc}); skipping it")
    return out


def _time_sync(graph: Any, handler: Any, n: int) -> float:
    config = {"callbacks": [handler]} if handler is not None else {}
    t0 = time.perf_counter()
    for i in range(n):
        graph.invoke({"text": f"question {i}"}, config)
    return time.perf_counter() - t0


def _time_async(graph: Any, handler: Any, n: int) -> float:
    config = {"callbacks": [handler]} if handler is not None else {}

    async def go() -> float:
        t0 = time.perf_counter()
        for i in range(n):
            await graph.ainvoke({"text": f"question {i}"}, config)
        return time.perf_counter() - t0

    return asyncio.run(go())


def added_per_span(graphs: dict[str, Any], handlers: dict[str, tuple[Any, Callable[[], None]]], spans: int, n: int,
                   rounds: int, mode: str) -> dict[str, float]:
    """Added time per span of each handler against no handler, median over ``rounds``.

    A sample is a short block of ``n`` invocations with one handler (or none), timed by
    the wall clock, plus the CPU time (all threads of the process) of that handler's flush
    right after it: work a handler leaves to a background thread is counted whether it
    ran during the block or in the flush (a flush's waiting, such as a peer's export to a
    port that refuses it, is not). Every round has each handler once, in a rotating order,
    and each handler's sample is paired with the same round's no-handler block: many short
    paired blocks cancel the drift of this machine's speed, which moved the old figure
    (a few long blocks) by 2x between runs.
    """
    timer = _time_sync if mode == "sync" else _time_async
    graph = graphs[mode]
    names = ["none", *handlers]
    samples: dict[str, list[float]] = {k: [] for k in names}
    for name in names:  # warm-up
        timer(graph, None if name == "none" else handlers[name][0], max(5, n))
    for _, flush in handlers.values():
        flush()
    gc.collect()
    gc.disable()  # a collection inside one block and not its pair's would be noise
    try:
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            if r % 2:
                order.reverse()
            for name in order:
                elapsed = timer(graph, None if name == "none" else handlers[name][0], n)
                if name != "none":
                    cpu = time.process_time()
                    handlers[name][1]()
                    elapsed += time.process_time() - cpu
                samples[name].append(elapsed)
                for other, (_, flush) in handlers.items():  # nothing spills into the next block
                    if other != name:
                        flush()
            if r % 10 == 9:
                gc.collect()  # between rounds: each round's blocks see the same heap
    finally:
        gc.enable()
    added = {name: sorted((samples[name][r] - samples["none"][r]) / (n * spans) * 1e6 for r in range(rounds))
             for name in handlers}
    quartile = max(0, rounds // 4)
    return {name: statistics.median(v) for name, v in added.items()} | {
        "_baseline_invocation_us": statistics.median(samples["none"]) * 1e6,
        "_spread": {name: (v[quartile], v[-1 - quartile]) for name, v in added.items()}}  # type: ignore[dict-item]


def memory_growth(graph: Any, handler: Any, flush: Callable[[], None], n: int) -> float:
    config = {"callbacks": [handler]}
    for i in range(50):
        graph.invoke({"text": f"warm {i}"}, config)
    flush()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        graph.invoke({"text": f"q {i}"}, config)
    flush()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / 2**20


def write_throughput(db: Path, total: int) -> float:
    with Tracer.from_url(f"sqlite:///{db}") as tracer:
        t0 = time.perf_counter()
        run = "bulk"
        for i in range(total):
            if i % 1000 == 0:
                run = f"bulk-{i}"
            s = Span(f"{run}-{i}", run, None if i % 1000 == 0 else run, "step", SpanKind.CHAIN, "bench")
            s.finish({"i": i})
            tracer.end(s)
        tracer.flush()
        return total / (time.perf_counter() - t0)


def big_run(db: Path, size: int) -> str:
    run = f"big-{uuid.uuid4().hex[:8]}"
    with Tracer.from_url(f"sqlite:///{db}") as tracer:
        root = Span(run, run, None, "big run", SpanKind.WORKFLOW, "bench")
        parents = [run]
        for i in range(size - 1):
            kind = SpanKind.LLM if i % 3 == 0 else SpanKind.NODE
            s = Span(f"{run}-{i}", run, parents[i // 10] if i // 10 < len(parents) else run, f"step {i}", kind, "bench")
            if kind == SpanKind.LLM:
                s.request_model, s.input_tokens, s.output_tokens = "gpt-4o-mini", 120, 30
            s.finish({"i": i})
            tracer.end(s)
            parents.append(s.span_id)
        root.finish()
        tracer.end(root)
    return run


def time_trace_command(db: Path, run: str) -> tuple[float, float]:
    from sutram_adapters._term import Terminal
    from sutram_adapters.trace_view import render_trace
    from sutram_core.traces import open_trace_store

    url = f"sqlite:///{db}"
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        with open_trace_store(url) as store:
            spans = store.run_spans("bench", run)
            render_trace(spans, Terminal(file=io.StringIO(), width=140))
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sutram_adapters.cli", "trace", run, "--tenant", "bench", "--url", url],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    return min(times), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the benchmark runs")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--memory", metavar="HANDLER", help=argparse.SUPPRESS)  # one handler, in a child process
    ap.add_argument("--invocations", type=int, default=1000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory:
        tmp = Path(tempfile.mkdtemp(prefix="sutram-bench-memory-"))
        handler, flush = make_handlers(tmp / "traces.db", only=args.memory)[args.memory]
        print(json.dumps({"growth_mib": memory_growth(build_graph(), handler, flush, args.invocations)}))
        return 0
    n, rounds, mem_n = (2, 2, 10) if args.smoke else (5, 40, 100) if args.quick else (5, 150, 1000)
    bulk, big = (1_000, 100) if args.smoke else (5_000, 500) if args.quick else (100_000, 5_000)
    tmp = Path(tempfile.mkdtemp(prefix="sutram-bench-tracing-"))
    graph = build_graph()
    graphs = {"sync": graph, "async": build_graph(asynchronous=True)}
    handlers = make_handlers(tmp / "traces.db")

    # spans per invocation, as Sutram records them
    sutram, flush = handlers["sutram"]
    graph.invoke({"text": "count"}, {"callbacks": [sutram]})
    flush()
    run = sutram.tracer.store.runs("default", limit=1)[0]
    spans = run.spans
    print(f"graph: 5 nodes, {spans} spans per invocation; blocks of {n} invocations (+ the handler's flush), "
          f"{rounds} rounds per handler")

    results: dict[str, Any] = {"spans_per_invocation": spans}
    stats = sutram.tracer.stats
    for mode in ("sync", "async"):
        busy, written = stats.busy_seconds, stats.written
        added = added_per_span(graphs, handlers, spans, n, rounds, mode)
        flush()
        writer_cpu = (stats.busy_seconds - busy) / max(1, stats.written - written) * 1e6
        results[f"{mode}_sutram_writer_cpu_us_per_span"] = writer_cpu
        peers = {k: v for k, v in added.items() if not k.startswith("_") and k not in ("sutram", "noop")}
        cheapest = min(peers, key=lambda k: peers[k]) if peers else None
        print(f"\n{mode}: invocation without a handler {added['_baseline_invocation_us'] / n:.0f} us")
        print(f"  {'handler':<10} {'added us/span':>14}   {'rounds: quartiles':>18}")
        for k, v in added.items():
            if not k.startswith("_"):
                note = "   (LangChain's own dispatch: a handler that does nothing)" if k == "noop" else ""
                low, high = added["_spread"][k]
                print(f"  {k:<10} {v:>14.1f}   {low:>8.1f} - {high:<8.1f}{note}")
        if "noop" in added:
            print(f"  Sutram's own share above LangChain's dispatch: {added['sutram'] - added['noop']:.1f} us/span"
                  f" (of which its writer thread's CPU: {writer_cpu:.1f} us/span)")
        if cheapest:
            ratio = added["sutram"] / peers[cheapest]
            print(f"  Sutram/peer ({cheapest}, the cheapest peer): {ratio:.3f}x   target <= 0.5x and <= 50 us/span")
            results[f"{mode}_ratio_vs_cheapest"] = ratio
        results[f"{mode}_added_us_per_span"] = added

    print(f"\nmemory growth after {mem_n} invocations with one reused handler (tracemalloc, one process each):")
    # a smoke run measures Sutram's own growth only (each peer's process takes seconds to
    # start and to give up exporting to a server that is not there)
    for name in (h for h in handlers if h != "noop" and (h == "sutram" or not args.smoke)):
        proc = subprocess.run([sys.executable, __file__, "--memory", name, "--invocations", str(mem_n)],
                              capture_output=True, text=True, check=True)
        grown = json.loads(proc.stdout.strip().splitlines()[-1])["growth_mib"]
        results[f"memory_growth_mib_{name}"] = grown
        print(f"  {name:<10} {grown:8.2f} MiB" + ("   target <= 2 MiB" if name == "sutram" else ""))

    rate = write_throughput(tmp / "bulk.db", bulk)
    results["write_spans_per_s"] = rate
    print(f"\n{bulk:,} spans written through the tracer: {rate:,.0f} spans/s")
    big_id = big_run(tmp / "bulk.db", big)
    in_proc, command = time_trace_command(tmp / "bulk.db", big_id)
    results["trace_render_s"] = in_proc
    results["trace_command_s"] = command
    print(f"sutram trace on a {big:,}-span run: {in_proc:.3f} s in process (query + render), "
          f"{command:.2f} s as a command (with interpreter start)   target < 1 s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
