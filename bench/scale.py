"""Scale-out benchmark: worker processes on one PostgreSQL database share a backlog of durable
runs while a chaos loop SIGKILLs a random worker every few seconds and starts it again.

    SUTRAM_BENCH_PG_URL=... python bench/scale.py            # make bench: 2,000 runs, 8 workers
    SUTRAM_BENCH_PG_URL=... python bench/scale.py --quick    # the smoke run of make test

The workload: a graph of 5 nodes, each making 2 calls to a fake provider that answers after
``--latency-ms`` (a sleep: real providers keep a worker waiting, not computing). Each worker
process owns a slice of the run ids (slot n starts runs n, n+W, ...), and before each run it
starts it recovers whatever a dead worker left (``recover(limit=1)``: leases expired). A worker
started again after a kill takes its slot's slice on from where the ledger says it stopped.

Figures:
  scaling   the same workload without kills, with 1, 2, 4, 8 workers: runs/s, p50/p99 run
            latency (the ledger's created -> finished)
  chaos     all workers, a worker SIGKILLed every ``--kill-every`` seconds (jittered; a random
            one of those up and working, not one still importing) and started again: runs/s, p50/p99 run latency, seconds from each kill to
            each of the dead worker's runs being claimed by a live worker (its lease is
            ``--lease`` seconds), runs lost (not completed), runs whose final state lacks any
            of its 10 answers, and calls made twice, each classified by its journal entry's
            commit time: every making before it (the answer reached a worker that was killed
            before it could record it: the window between a side effect and its record, which
            no journal closes), or a making after it (the journal failed to answer: a bug; the
            benchmark exits non-zero)
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

from bench._pg import drop_schema, fresh_schema  # noqa: E402

TENANT = "scale"
NODES = 5
CALLS = 2


class Provider(BaseChatModel):
    """A fake provider: answers after a sleep, reports usage, logs each call it answers."""

    @property
    def _llm_type(self) -> str:
        return "bench-scale"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        time.sleep(float(os.environ.get("SUTRAM_SCALE_LATENCY", "0")))
        asked = str(messages[-1].content)
        with open(os.environ["SUTRAM_SCALE_CALL_LOG"], "a") as log:  # one short write: atomic
            log.write(f"{time.time_ns() // 1000} {os.getpid()} {asked}\n")
        msg = AIMessage(content=f"answer to {asked}",
                        usage_metadata={"input_tokens": 12, "output_tokens": 5, "total_tokens": 17},
                        response_metadata={"model_name": "gpt-4o-mini"})
        return ChatResult(generations=[ChatGeneration(message=msg)])


class State(TypedDict):
    run: str
    answers: Annotated[list[str], operator.add]


def graph() -> Any:
    model = Provider()

    def node(k: int) -> Any:
        def call(state: State) -> dict[str, Any]:
            return {"answers": [str(model.invoke([HumanMessage(f"{state['run']} n{k} c{c}")]).content)
                                for c in range(CALLS)]}
        return call

    g = StateGraph(State)
    for k in range(NODES):
        g.add_node(f"n{k}", node(k))
    g.add_edge(START, "n0")
    for k in range(1, NODES):
        g.add_edge(f"n{k - 1}", f"n{k}")
    g.add_edge(f"n{NODES - 1}", END)
    return g.compile()


def expected_answers(run: str) -> list[str]:
    return [f"answer to {run} n{k} c{c}" for k in range(NODES) for c in range(CALLS)]


def worker(url: str, slot: int, workers: int, runs: int, executor: str, lease: float, stop: str) -> None:
    """One worker process: recover what the dead left, else start the next run of its slice."""
    from sutram_adapters.langgraph.durable import durable
    from sutram_core.errors import RunNotFoundError

    mine = iter(range(slot, runs, workers))
    with durable(graph(), url=url, tenant=TENANT, lease_seconds=lease, executor_id=executor,
                 remember_runs=False, trace=False) as runner:
        Path(f"{stop}.ready.{executor}").touch()
        parent = os.getppid()
        while not os.path.exists(f"{stop}.go"):  # the clock starts when every worker is up
            if os.getppid() != parent:
                return  # the benchmark is gone
            time.sleep(0.01)
        while not os.path.exists(stop) and os.getppid() == parent:
            if runner.recover(limit=1):
                continue
            i = next(mine, None)
            if i is None:
                time.sleep(0.05)  # nothing of its own left: stay to recover others' runs
                continue
            try:
                runner.ledger.get(TENANT, f"r{i}")
                continue  # started before this process (a killed predecessor, or recovered)
            except RunNotFoundError:
                pass
            runner.invoke({"run": f"r{i}", "answers": []}, thread_id=f"t{i}", run_id=f"r{i}")


def _spawn(url: str, slot: int, workers: int, runs: int, executor: str, args: argparse.Namespace,
           env: dict[str, str], stop: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--worker", url, str(slot), str(workers), str(runs), executor,
                             str(args.lease), str(stop)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _ledger(url: str) -> dict[str, tuple[str, str | None, int, int | None, int]]:
    """run_id -> (status, executor, created, finished, attempts), read over a plain connection."""
    import psycopg

    with psycopg.connect(_libpq(url)) as conn:
        rows = conn.execute("SELECT run_id, status, executor_id, created_at, finished_at, attempts "
                            "FROM sutram_runs WHERE tenant_id = %s", (TENANT,)).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def session(base_url: str, runs: int, workers: int, args: argparse.Namespace, chaos: bool) -> dict[str, Any]:
    """Run ``runs`` runs on ``workers`` processes (killing one every few seconds if ``chaos``)
    on a schema of their own; return the figures."""
    url, schema = fresh_schema(base_url)
    tmp = Path(tempfile.mkdtemp(prefix="sutram-scale-"))
    procs: dict[int, subprocess.Popen[bytes]] = {}
    try:
        return _session(url, tmp, procs, runs, workers, args, chaos)
    finally:
        (tmp / "stop").touch()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        drop_schema(base_url, schema)


def _session(url: str, tmp: Path, procs: dict[int, subprocess.Popen[bytes]], runs: int, workers: int,
             args: argparse.Namespace, chaos: bool) -> dict[str, Any]:
    calls, stop = tmp / "calls.log", tmp / "stop"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SUTRAM_SCALE_CALL_LOG": str(calls),
           "SUTRAM_SCALE_LATENCY": str(args.latency_ms / 1000)}
    from sutram_adapters.langgraph.durable import durable

    with durable(graph(), url=url, tenant=TENANT, trace=False) as runner:  # the schema, before the clock starts
        runner.ledger.runs(TENANT, limit=1)
    procs.update({n: _spawn(url, n, workers, runs, f"w{n}.0", args, env, stop) for n in range(workers)})
    deadline = time.monotonic() + args.timeout

    def alive() -> None:
        for n, proc in procs.items():
            if proc.poll() is not None:  # a worker must not die on its own
                err = proc.stderr.read().decode()[-3000:] if proc.stderr else ""
                raise SystemExit(f"worker {n} exited {proc.returncode}: {err}")
        if time.monotonic() > deadline:
            raise SystemExit(f"not done after {args.timeout} s")

    while len(list(tmp.glob("stop.ready.*"))) < workers:
        alive()
        time.sleep(0.05)
    Path(f"{stop}.go").touch()
    generation = Counter[int]()
    kills: list[tuple[int, int, str]] = []  # (time µs, pid, executor)
    resumes: list[float] = []
    watching: list[threading.Thread] = []
    rng = random.Random(args.seed)
    started = time.monotonic()

    def watch(killed_at: float, executor: str, held: list[str]) -> None:
        # seconds from the kill until a live worker claimed each run the dead one held
        left = set(held)
        while left and time.monotonic() < deadline:
            now = _ledger(url)
            for run_id in list(left):
                status, owner = now[run_id][0], now[run_id][1]
                if owner != executor or status != "running":
                    resumes.append(time.monotonic() - killed_at)
                    left.discard(run_id)
            time.sleep(0.05)

    # the first kill once a tenth of the runs are done (so that even a fast machine has one),
    # then one every kill_every seconds, jittered
    next_kill: float | None = None
    while True:
        ledger = _ledger(url)
        finished = sum(s in ("completed", "failed") for s, *_ in ledger.values())
        if finished == runs:
            break
        alive()
        if chaos and next_kill is None and finished >= max(1, runs // 10):
            next_kill = time.monotonic()
        if chaos and next_kill is not None and time.monotonic() >= next_kill:
            up = [n for n in range(workers) if Path(f"{stop}.ready.w{n}.{generation[n]}").exists()]
            n = rng.choice(up or list(range(workers)))  # one that is at work, not still importing
            victim = procs[n]
            executor = f"w{n}.{generation[n]}"
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed_at = time.monotonic()
            kills.append((time.time_ns() // 1000, victim.pid, executor))
            held = [rid for rid, (s, owner, *_) in _ledger(url).items() if s == "running" and owner == executor]
            generation[n] += 1
            procs[n] = _spawn(url, n, workers, runs, f"w{n}.{generation[n]}", args, env, stop)
            t = threading.Thread(target=watch, args=(killed_at, executor, held), daemon=True)
            t.start()
            watching.append(t)
            next_kill = time.monotonic() + args.kill_every * rng.uniform(0.5, 1.5)
        time.sleep(0.1)
    wall = time.monotonic() - started
    for t in watching:
        t.join(timeout=args.lease + 30)
    figures = _check(url, runs, calls)
    latencies = [(fin - created) / 1e6 for _, _, created, fin, _ in _ledger(url).values() if fin]
    figures.update(runs=runs, workers=workers, wall_s=wall, runs_per_s=runs / wall,
                   p50_s=_pct(latencies, 0.5), p99_s=_pct(latencies, 0.99), kills=len(kills),
                   kill_to_claimed_s=sorted(resumes))
    return figures


def _check(url: str, runs: int, calls: Path) -> dict[str, Any]:
    """Runs lost, runs with a final state missing answers, and calls made twice, each
    classified by its journal entry's commit time: made again after it (the journal failed
    to answer: a bug) or every time before it (the answer came to a worker that died, or
    lost its lease, before it could record it: the window no journal closes)."""
    import psycopg

    ledger = _ledger(url)
    lost = sorted(rid for rid in (f"r{i}" for i in range(runs)) if ledger.get(rid, ("",))[0] != "completed")
    from sutram_adapters.langgraph.durable import durable

    incomplete = []
    with durable(graph(), url=url, tenant=TENANT, trace=False) as runner:
        app = runner.graph
        for i in range(runs):
            state = app.get_state({"configurable": {"thread_id": f"t{i}"}})
            if sorted(state.values.get("answers", [])) != sorted(expected_answers(f"r{i}")):
                incomplete.append(f"r{i}")
    made: dict[str, list[int]] = {}
    for line in calls.read_text().splitlines():
        at, _pid, asked = line.split(" ", 2)
        made.setdefault(asked, []).append(int(at))
    in_window, after_commit = [], []
    with psycopg.connect(_libpq(url)) as conn:
        for asked, times in made.items():
            if len(times) < 2:
                continue
            run = asked.split(" ", 1)[0]
            rows = conn.execute("SELECT created_at FROM sutram_journal WHERE tenant_id = %s AND thread_id = %s "
                                "AND output LIKE %s", (TENANT, "t" + run[1:], f"%answer to {asked}%")).fetchall()
            if len(rows) != 1:
                raise SystemExit(f"{asked!r} was made {len(times)} times and has {len(rows)} journal entries")
            (in_window if max(times) <= rows[0][0] else after_commit).append(asked)
    return {"lost": lost, "incomplete": incomplete, "calls": sum(len(t) for t in made.values()),
            "repeated_in_window": sorted(in_window), "repeated_after_commit": sorted(after_commit)}


def report(scaling: list[dict[str, Any]], chaos: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\nscale-out on PostgreSQL: {NODES} nodes x {CALLS} calls a run, provider latency {args.latency_ms} ms, "
          f"lease {args.lease} s, {os.cpu_count()} cores")
    print(f"{'workers':>8} {'runs':>6} {'runs/s':>8} {'p50 s':>7} {'p99 s':>7} {'vs 1 worker':>12}")
    base = scaling[0]["runs_per_s"] if scaling else 0
    for row in scaling:
        print(f"{row['workers']:>8} {row['runs']:>6} {row['runs_per_s']:>8.1f} {row['p50_s']:>7.3f} {row['p99_s']:>7.3f} "
              f"{row['runs_per_s'] / base:>11.2f}x")
    claimed = chaos["kill_to_claimed_s"]
    print(f"\nchaos: {chaos['workers']} workers, {chaos['runs']} runs, a worker SIGKILLed every ~{args.kill_every} s "
          f"and started again ({chaos['kills']} kills)")
    print(f"  runs/s {chaos['runs_per_s']:.1f}, run latency p50 {chaos['p50_s']:.3f} s, p99 {chaos['p99_s']:.3f} s")
    if claimed:
        print(f"  kill -> run claimed by a live worker: p50 {statistics.median(claimed):.2f} s, "
              f"max {max(claimed):.2f} s over {len(claimed)} runs (lease {args.lease} s)")
    print(f"  runs lost or stuck: {len(chaos['lost'])}; runs whose final state lacks an answer: "
          f"{len(chaos['incomplete'])}")
    print(f"  calls made: {chaos['calls']} for {chaos['runs'] * NODES * CALLS} needed; made twice: "
          f"{len(chaos['repeated_in_window'])} answered before their journal entry was committed (a worker killed "
          f"in between), {len(chaos['repeated_after_commit'])} made again after it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="the smoke run of make test")
    parser.add_argument("--runs", type=int, default=2000, help="runs of the chaos session")
    parser.add_argument("--scaling-runs", type=int, default=500, help="runs of each scaling session")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts of the scaling sessions")
    parser.add_argument("--chaos-workers", type=int, default=8)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills (jittered ±50%%)")
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--latency-ms", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.worker:
        url, slot, workers, runs, executor, lease, stop = args.worker
        worker(url, int(slot), int(workers), int(runs), executor, float(lease), stop)
        return
    if args.quick:
        args.runs, args.scaling_runs, args.workers, args.chaos_workers = 30, 12, "1,2", 2
        args.kill_every, args.lease, args.timeout = 3.0, 1.0, 200.0
    base_url = os.environ.get("SUTRAM_BENCH_PG_URL")
    if not base_url:
        raise SystemExit("bench/scale.py needs PostgreSQL: set SUTRAM_BENCH_PG_URL (make bench does)")
    scaling = [session(base_url, args.scaling_runs, int(w), args, chaos=False) for w in args.workers.split(",")]
    chaos = session(base_url, args.runs, args.chaos_workers, args, chaos=True)
    report(scaling, chaos, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"scaling": scaling, "chaos": chaos}, indent=2))
    if chaos["lost"] or chaos["incomplete"] or chaos["repeated_after_commit"]:
        raise SystemExit("runs lost, incomplete, or a committed call made again: see above")


if __name__ == "__main__":
    main()
