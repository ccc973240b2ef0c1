"""Durable LlamaIndex workflows: Sutram's ``durable_workflow`` against the same workflow on
LlamaIndex's own runtime and on ``llama-agents-dbos`` (DBOS's runtime plugin), same process,
same database engine. Run by bench/durable.py (its LlamaIndex rows); alone:

    python bench/durable_llama.py [--quick] [--backend sqlite|postgresql|all]

Figures:
  step     ms per step of an 11-step workflow (a start step, then one step ten times) run to
           completion: the plain workflow (no durability), durable_workflow (every runtime
           tick journaled before its effects, fenced; no tracing), and, where
           llama-agents-dbos is installed with a DBOS it supports, DBOSRuntime on the same
           engine (SQLite: its own file; PostgreSQL: the same server); interleaved halves
  resume   a worker is SIGKILLed inside a step; another process polls recover() every
           0.1 s: seconds from the death to the run's completion, against lease + 1 s

llama-agents-dbos 0.7 needs dbos < 3 (it builds DBOS queues directly, which DBOS 3 refuses),
while bench/durable.py compares the LangGraph runner with DBOS 3.4; make bench therefore runs
this file a second time in a virtualenv of its own with dbos 2.31.1 and llama-agents-dbos 0.7.0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workflows import Workflow, step  # noqa: E402
from workflows.events import Event, StartEvent, StopEvent  # noqa: E402

from bench._pg import drop_schema, fresh_schema  # noqa: E402
from sutram_adapters.llama_index.durable import durable_workflow  # noqa: E402

HOPS = 10
STEPS = HOPS + 1


class Hop(Event):
    n: int


class Linear(Workflow):
    """A start step, then ``hop`` ten times; a benchmark child may die inside the fifth hop."""

    @step
    async def begin(self, ev: StartEvent) -> Hop:
        return Hop(n=0)

    @step
    async def hop(self, ev: Hop) -> Hop | StopEvent:
        if ev.n == 4 and os.environ.get("SUTRAM_BENCH_KILL") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return Hop(n=ev.n + 1) if ev.n + 1 < HOPS else StopEvent(result=ev.n + 1)


def dbos_runtime(name: str, url: str, root: Path) -> tuple[Any, Any] | None:
    """A DBOSRuntime on the engine of ``url`` (None where llama-agents-dbos is missing or
    the DBOS installed is one it refuses) and a cleanup."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        if int(version("dbos").split(".")[0]) >= 3:  # llama-agents-dbos 0.7 cannot declare its queues
            return None
        from dbos import DBOS
        from llama_agents.dbos import DBOSRuntime
    except (ImportError, PackageNotFoundError):
        return None
    schema = None
    if name == "sqlite":
        system = f"sqlite:///{root / f'dbos-{uuid.uuid4().hex[:6]}.db'}"
        config: dict[str, Any] = {"name": "sutram-bench-llama", "system_database_url": system,
                                  "log_level": "WARNING"}
    else:
        system, schema = fresh_schema(url)
        config = {"name": "sutram-bench-llama", "system_database_url": url, "dbos_system_schema": schema,
                  "log_level": "WARNING"}
    DBOS(config=config)  # type: ignore[arg-type]
    runtime = DBOSRuntime()

    def cleanup() -> None:
        DBOS.destroy(destroy_registry=True)
        if schema is not None:
            drop_schema(url, schema)

    return runtime, cleanup


async def per_step(name: str, url: str, runs: int, root: Path) -> dict[str, Any]:
    """ms per step: plain, Sutram (untraced), and DBOS where it runs (halves interleaved)."""
    plain = Linear(timeout=60)
    sutram = durable_workflow(Linear(timeout=60), url=url, tenant="bench", trace=False)
    made = dbos_runtime(name, url, root)
    dbos_flow = None
    why = ("llama-agents-dbos 0.7 is not installed with a DBOS it supports (dbos < 3; make bench runs it in "
           "a virtualenv of its own with dbos 2.31.1)")
    if made is not None:
        runtime, cleanup = made
        try:
            dbos_flow = Linear(runtime=runtime, timeout=60)
            await runtime.launch()
        except Exception as exc:  # an incompatible DBOS (3.x refuses its queues): reported, not fatal
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:140]}"
            cleanup()
            made, dbos_flow = None, None

    async def timed(run: Any) -> float:
        start = time.perf_counter()
        for _ in range(runs // 2):
            assert await run() == HOPS
        return time.perf_counter() - start

    try:
        await timed(plain.run)  # warm up every path once
        await timed(sutram.run)
        if dbos_flow is not None:
            await timed(dbos_flow.run)
        plain_t = await timed(plain.run)
        sutram_t = await timed(sutram.run)
        dbos_t = await timed(dbos_flow.run) if dbos_flow is not None else 0.0
        if dbos_flow is not None:
            dbos_t += await timed(dbos_flow.run)
        sutram_t += await timed(sutram.run)
        plain_t += await timed(plain.run)
    finally:
        sutram.close()
        if made is not None:
            made[1]()
    steps = (runs // 2) * 2 * STEPS
    out = {"plain_ms": plain_t / steps * 1e3, "sutram_ms": sutram_t / steps * 1e3}
    if dbos_flow is not None:
        out["dbos_ms"] = dbos_t / steps * 1e3
    else:
        out["dbos_not_run"] = why  # type: ignore[assignment]
    return out


def _child(url: str, run_id: str, lease: float) -> subprocess.Popen[str]:
    env = {**os.environ, "SUTRAM_BENCH_KILL": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, __file__, "--worker", url, run_id, str(lease)], env=env, text=True,
                            stderr=subprocess.PIPE)


def _linear() -> type[Workflow]:
    """The workflow class as ``bench.durable_llama`` names it, in the dying worker and in the
    recovering process alike: the journal names event classes by module, and a class of a
    script's ``__main__`` could not be found by another process."""
    from bench import durable_llama

    return durable_llama.Linear


def _worker(url: str, run_id: str, lease: float) -> None:
    runner = durable_workflow(_linear()(timeout=60), url=url, tenant="bench", lease_seconds=lease, trace=False)
    asyncio.run(runner.run(run_id=run_id))


async def death_to_done(url: str, lease: float, trials: int) -> list[float]:
    """Seconds from a worker's SIGKILL inside a step to its run's completion by a poller."""
    got = []
    runner = durable_workflow(_linear()(timeout=60), url=url, tenant="bench", lease_seconds=lease, trace=False)
    for _ in range(trials):
        child = _child(url, f"kill-{uuid.uuid4().hex[:8]}", lease)
        child.wait(120)
        assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
        died = time.monotonic()
        while not (done := await runner.recover(limit=1)):
            await asyncio.sleep(0.1)
        assert done[0].status.value == "completed", done[0]
        got.append(time.monotonic() - died)
    runner.close()
    return got


def figures(name: str, url: str, quick: bool, root: Path) -> dict[str, Any]:
    runs, trials, lease = (10, 1, 1.0) if quick else (60, 3, 2.0)
    step = asyncio.run(per_step(name, url, runs, root))
    resumed = asyncio.run(death_to_done(url, lease, trials))
    return {"step": step, "lease_seconds": lease, "death_to_done_seconds": resumed, "runs": runs}


def report(name: str, got: dict[str, Any]) -> None:
    step = got["step"]
    print(f"\n== {name}: durable LlamaIndex workflow ({STEPS} steps, {got['runs']} runs)")
    print(f"{'per step (ms)':58} {'Sutram':>11} {'peer':>11} {'ratio':>12}")
    _row("durable_workflow vs the plain workflow (no durability)", step["sutram_ms"], step["plain_ms"])
    print(f"{'added per step by durable_workflow (ms)':58} {step['sutram_ms'] - step['plain_ms']:11.3f}")
    if "dbos_ms" in step:
        _row("durable_workflow vs llama-agents-dbos (DBOSRuntime)", step["sutram_ms"], step["dbos_ms"])
    else:
        print(f"llama-agents-dbos not run: {step['dbos_not_run']}")
    lease = got["lease_seconds"]
    print(f"{f'SIGKILL in a step -> run completed by a poller, lease {lease:g} s (s)':58} "
          f"{' '.join(f'{x:.2f}' for x in got['death_to_done_seconds'])}   (target <= {lease + 1:g})")


def _row(name: str, sutram: float, peer: float) -> None:
    print(f"{name:58} {sutram:11.3f} {peer:11.3f} {sutram / peer:11.3f}x  Sutram/peer")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    ap.add_argument("--worker", nargs=3, metavar=("URL", "RUN", "LEASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker[0], args.worker[1], float(args.worker[2]))
        return
    root = Path(tempfile.mkdtemp(prefix="sutram-bench-llama-"))
    pg_url = os.environ.get("SUTRAM_BENCH_PG_URL")
    if args.backend in ("sqlite", "all"):
        report("sqlite", figures("sqlite", f"sqlite:///{root / 'llama.db'}", args.quick, root))
    if args.backend in ("postgresql", "all") and pg_url:
        url, schema = fresh_schema(pg_url)
        try:
            report("postgresql", figures("postgresql", url, args.quick, root))
        finally:
            drop_schema(pg_url, schema)


if __name__ == "__main__":
    main()
