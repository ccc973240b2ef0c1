"""Checkpointer benchmark: SutramSaver against LangGraph's savers, same process, same
database engine, same durability settings. Prints each figure and the ratio.

    python bench/checkpointer.py                       # SQLite, and PostgreSQL when
                                                       # SUTRAM_BENCH_PG_URL is set (make bench)
    python bench/checkpointer.py --quick               # a small smoke run

Workloads (identical inputs for both savers):
  graph   a 5-node StateGraph whose nodes each append a message (add_messages):
          THREADS threads x STEPS super-steps (sync: invoke; async: ainvoke, threads concurrent)
          Throughput figures run in halves in the order peer, Sutram, Sutram, peer, so that
          drift over the run (memory growth, CPU frequency) favours neither side.
  raw     put + put_writes of checkpoints whose messages list grows by one per checkpoint
  read    get_tuple (latest) latency and a full list() on one thread of 1,000 checkpoints
  small   put+put_writes latency and get_tuple latency on states of three scalars (a thread
          of 500 checkpoints): the fixed cost of a write and a read, where the raw and
          read workloads are dominated by the growing message list
  bytes   storage after graph + read workloads; memory: tracemalloc peak of list() and a graph run
  open    a saver ready on a new database (its schema made: a new SQLite file, a new
          PostgreSQL schema) and on one that has it, each timed until setup() returns

SQLite runs with WAL and synchronous=NORMAL for both savers (changeable with
--synchronous); PostgreSQL with the server defaults (synchronous_commit=on) for both.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base.id import uuid6
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from sutram_adapters.langgraph import SutramSaver

_WORDS = ("agent", "order", "shipping", "invoice", "customer", "refund", "tool", "result", "status", "delivery",
          "warehouse", "estimate", "account", "payment", "address", "tracking", "update", "policy", "window",
          "carrier", "parcel", "return", "label", "priority", "express", "standard", "region", "backorder")


def text(seed: int, words: int = 24) -> str:
    """Deterministic, varied text like a model's reply. (Repeating one phrase would let
    PostgreSQL's TOAST compression hide how much a saver really stores.)"""
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) + str(rng.randint(0, 999)) for _ in range(words))


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    step: int


def build_graph() -> Any:
    g = StateGraph(State)
    for i in range(5):
        def node(state: State, i: int = i) -> dict[str, Any]:
            n = len(state["messages"])
            return {"messages": [AIMessage(content=f"node {i}: " + text(n * 7 + i), id=f"m{n}")],
                    "step": state.get("step", 0) + 1}
        g.add_node(f"n{i}", node)
    g.add_edge(START, "n0")
    for i in range(4):
        g.add_edge(f"n{i}", f"n{i + 1}")
    g.add_edge("n4", END)
    return g.compile


# -- savers --------------------------------------------------------------------------

class Backend:
    name: str

    def sutram(self) -> AbstractContextManager[Any]: ...
    def peer(self) -> AbstractContextManager[Any]: ...
    def asutram(self) -> AbstractAsyncContextManager[Any]: ...
    def apeer(self) -> AbstractAsyncContextManager[Any]: ...
    def bytes(self, which: str) -> int: ...
    def open_saver(self, who: str, name: str) -> float: ...


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, root: Path, synchronous: str) -> None:
        self.root, self.sync = root, synchronous
        self.files = {"sutram": root / "sutram.db", "peer": root / "peer.db"}

    @contextmanager
    def sutram(self) -> Iterator[Any]:
        with SutramSaver.from_url(f"sqlite:///{self.files['sutram']}?synchronous={self.sync}") as s:
            yield s

    @contextmanager
    def peer(self) -> Iterator[Any]:
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(self.files["peer"], check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
        conn.execute(f"PRAGMA synchronous={self.sync}")
        try:
            yield saver
        finally:
            conn.close()

    @asynccontextmanager
    async def asutram(self) -> Any:
        async with SutramSaver.from_url(f"sqlite:///{self.files['sutram']}?synchronous={self.sync}") as s:
            yield s

    @asynccontextmanager
    async def apeer(self) -> Any:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with aiosqlite.connect(self.files["peer"]) as conn:
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            await conn.execute(f"PRAGMA synchronous={self.sync}")
            yield saver

    def open_saver(self, who: str, name: str) -> float:
        """Seconds until a saver on the file ``name`` is set up (the file new or not)."""
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = self.root / f"open-{who}-{name}.db"
        t0 = time.perf_counter()
        if who == "sutram":
            saver = SutramSaver(f"sqlite:///{path}?synchronous={self.sync}")
            saver.setup()
            elapsed = time.perf_counter() - t0
            saver.close()
        else:
            conn = sqlite3.connect(path, check_same_thread=False)
            SqliteSaver(conn).setup()
            elapsed = time.perf_counter() - t0
            conn.close()
        return elapsed

    def bytes(self, which: str) -> int:
        path = self.files[which]
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
        conn.close()
        return int(size)


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg

        self.schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        sep = "&" if "?" in url else "?"
        self.url = f"{url}{sep}options={quote(f'-csearch_path={self.schema}')}"
        self.base = url
        self.opened: set[str] = set()

    @contextmanager
    def sutram(self) -> Iterator[Any]:
        with SutramSaver.from_url(self.url) as s:
            yield s

    @contextmanager
    def peer(self) -> Iterator[Any]:
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(self.url) as saver:
            saver.setup()
            yield saver

    @asynccontextmanager
    async def asutram(self) -> Any:
        async with SutramSaver.from_url(self.url) as s:
            yield s

    @asynccontextmanager
    async def apeer(self) -> Any:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(self.url) as saver:
            await saver.setup()
            yield saver

    def open_saver(self, who: str, name: str) -> float:
        """Seconds until a saver on the PostgreSQL schema ``name`` is set up (its connection
        opened; the schema new or not)."""
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver

        schema = f"{self.schema}_{who}_{name}"[:63]
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        sep = "&" if "?" in self.base else "?"
        url = f"{self.base}{sep}options={quote(f'-csearch_path={schema}')}"
        t0 = time.perf_counter()
        if who == "sutram":
            saver = SutramSaver(url)
            saver.setup()
            elapsed = time.perf_counter() - t0
            saver.close()
        else:
            with PostgresSaver.from_conn_string(url) as peer:
                peer.setup()
                elapsed = time.perf_counter() - t0
        self.opened.add(schema)
        return elapsed

    def bytes(self, which: str) -> int:
        import psycopg

        tables = (["sutram_checkpoints", "sutram_checkpoint_blobs", "sutram_checkpoint_writes"] if which == "sutram"
                  else ["checkpoints", "checkpoint_blobs", "checkpoint_writes"])
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            total = 0
            for t in tables:
                total += conn.execute(f"SELECT pg_total_relation_size('{self.schema}.{t}')").fetchone()[0]  # type: ignore[index]
        return total

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as conn:
            for schema in (self.schema, *self.opened):
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


# -- workloads -------------------------------------------------------------------------

def graph_sync(saver: Any, threads: int, steps: int, prefix: str) -> tuple[int, float]:
    graph = build_graph()(checkpointer=saver)
    t0 = time.perf_counter()
    for t in range(threads):
        cfg = {"configurable": {"thread_id": f"{prefix}-{t}"}}
        for i in range(steps // 5):
            graph.invoke({"messages": [HumanMessage(content=f"user turn {i}", id=f"h{i}")]}, cfg)
    return threads * steps, time.perf_counter() - t0


async def graph_async(saver: Any, threads: int, steps: int, prefix: str) -> tuple[int, float]:
    graph = build_graph()(checkpointer=saver)

    async def one(t: int) -> None:
        cfg = {"configurable": {"thread_id": f"{prefix}-{t}"}}
        for i in range(steps // 5):
            await graph.ainvoke({"messages": [HumanMessage(content=f"user turn {i}", id=f"h{i}")]}, cfg)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(t) for t in range(threads)))
    return threads * steps, time.perf_counter() - t0


Items = Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]]


def _thread_items(saver: Any, thread: str, n: int, first: str, value: Callable[[int], Any], branches: int) -> Items:
    """The checkpoints of a thread of ``n`` super-steps, each writing channel ``first``
    (``value(i)``), a step counter and one of ``branches`` branch channels."""
    versions: dict[str, Any] = {}
    parent = None
    for i in range(n):
        new = {}
        branch = f"branch:to:n{i % branches}"
        for ch in (first, "step", branch):
            versions[ch] = new[ch] = saver.get_next_version(versions.get(ch), None)
        cp = {"v": 4, "id": str(uuid6(clock_seq=i)), "ts": "2026-01-01T00:00:00+00:00",
              "channel_values": {first: value(i), "step": i, branch: None},
              "channel_versions": dict(versions),
              "versions_seen": {f"n{k}": {first: versions[first]} for k in range(branches)},
              "updated_channels": sorted(new)}
        conf: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        if parent:
            conf["configurable"]["checkpoint_id"] = parent
        parent = cp["id"]
        yield conf, cp, {"source": "loop", "step": i, "parents": {}}, new


def raw_items(saver: Any, thread: str, n: int) -> Items:
    """The checkpoints of a thread whose messages grow by one per checkpoint."""
    messages: list[Any] = []

    def grown(i: int) -> list[Any]:
        nonlocal messages
        messages = [*messages, AIMessage(content=f"observation {i}: " + text(i), id=f"r{i}")]
        return messages

    return _thread_items(saver, thread, n, "messages", grown, 5)


def small_items(saver: Any, thread: str, n: int) -> Items:
    """The checkpoints of a thread whose state is a few scalars (a counter, a step, a branch):
    what each put and read costs beyond its values."""
    return _thread_items(saver, thread, n, "count", lambda i: i, 3)


def small_put_ms(saver: Any, prefix: str, threads: int, n: int) -> float:
    """Median latency of put + put_writes of small states (ms)."""
    samples = []
    for conf, cp, md, new in [item for t in range(threads) for item in small_items(saver, f"{prefix}-{t}", n)]:
        t0 = time.perf_counter()
        saved = saver.put(conf, cp, md, new)
        saver.put_writes(saved, [("count", 1), ("step", 1)], "task-1")
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def raw_sync(saver: Any, threads: int, n: int, prefix: str) -> tuple[int, float]:
    work = [item for t in range(threads) for item in raw_items(saver, f"{prefix}-{t}", n)]
    t0 = time.perf_counter()
    for conf, cp, md, new in work:
        saved = saver.put(conf, cp, md, new)
        saver.put_writes(saved, [("messages", cp["channel_values"]["messages"][-1]), ("step", 1)], "task-1")
    return len(work), time.perf_counter() - t0


async def raw_async(saver: Any, threads: int, n: int, prefix: str) -> tuple[int, float]:
    work = [list(raw_items(saver, f"{prefix}-{t}", n)) for t in range(threads)]

    async def one(items: list[Any]) -> None:
        for conf, cp, md, new in items:
            saved = await saver.aput(conf, cp, md, new)
            await saver.aput_writes(saved, [("messages", cp["channel_values"]["messages"][-1]), ("step", 1)], "task-1")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(items) for items in work))
    return sum(len(w) for w in work), time.perf_counter() - t0


def timed(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def peak_mib(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


# -- driver ----------------------------------------------------------------------------

ABBA = ("peer", "sutram", "sutram", "peer")  # alternating halves cancel drift over the run


def run(backend: Backend, threads: int, steps: int, long_thread: int, raw_n: int) -> list[tuple[str, float, float, str]]:
    sync_cm = {"peer": backend.peer, "sutram": backend.sutram}
    async_cm = {"peer": backend.apeer, "sutram": backend.asutram}
    res: dict[str, dict[str, float]] = {"sutram": {}, "peer": {}}
    half = max(1, threads // 2)

    def throughput(key: str, measure: Callable[[Any, str], tuple[int, float]], asynchronous: bool = False) -> None:
        done = {"peer": [0, 0.0], "sutram": [0, 0.0]}
        for i, who in enumerate(ABBA):
            gc.collect()
            if asynchronous:
                async def go(who: str = who, i: int = i) -> tuple[int, float]:
                    async with async_cm[who]() as saver:
                        return await measure(saver, f"{key}{i}")  # type: ignore[no-any-return, misc]
                n, secs = asyncio.run(go())
            else:
                with sync_cm[who]() as saver:
                    n, secs = measure(saver, f"{key}{i}")
            done[who][0] += n
            done[who][1] += secs
        for who in done:
            res[who][key] = done[who][0] / done[who][1]

    throughput("graph_sync", lambda s, p: graph_sync(s, half, steps, p))
    throughput("graph_async", lambda s, p: graph_async(s, half, steps, p), asynchronous=True)  # type: ignore[arg-type, return-value]
    throughput("raw_sync", lambda s, p: raw_sync(s, half, raw_n, p))
    throughput("raw_async", lambda s, p: raw_async(s, half, raw_n, p), asynchronous=True)  # type: ignore[arg-type, return-value]

    cfg = {"configurable": {"thread_id": "long", "checkpoint_ns": ""}}
    with sync_cm["peer"]() as peer, sync_cm["sutram"]() as ours:
        savers = {"peer": peer, "sutram": ours}
        for saver in savers.values():
            for conf, cp, md, new in raw_items(saver, "long", long_thread):
                saver.put(conf, cp, md, new)
            saver.get_tuple(cfg)
        with sync_cm["sutram"]() as cold:  # a fresh saver: nothing of the thread in memory
            timed_savers = {"peer": peer, "sutram": ours, "sutram_cold": cold}
            samples: dict[str, list[float]] = {k: [] for k in timed_savers}
            for _ in range(30):  # alternate the savers sample by sample
                for who, saver in timed_savers.items():
                    t0 = time.perf_counter()
                    saver.get_tuple(cfg)
                    samples[who].append(time.perf_counter() - t0)
        for who in savers:
            res[who]["get_tuple_ms"] = statistics.median(samples[who]) * 1e3
        res["sutram"]["get_tuple_cold_ms"] = statistics.median(samples["sutram_cold"]) * 1e3
        res["peer"]["get_tuple_cold_ms"] = res["peer"]["get_tuple_ms"]
        for who in ABBA[:2]:
            res[who]["list_s"] = timed(lambda s=savers[who]: sum(1 for _ in s.list(cfg)), 1)
        for who in ABBA[:2]:
            res[who]["list_peak_mib"] = peak_mib(lambda s=savers[who]: sum(1 for _ in s.list(cfg)))
            res[who]["graph_peak_mib"] = peak_mib(lambda s=savers[who]: graph_sync(s, 1, 50, "mem"))

    # small states: the fixed cost of a write and of a read, the savers alternated round by round
    small_n = max(50, long_thread // 2)
    with sync_cm["peer"]() as peer, sync_cm["sutram"]() as ours:
        savers = {"peer": peer, "sutram": ours}
        puts: dict[str, list[float]] = {"peer": [], "sutram": []}
        for r in range(4):
            for who in ABBA:
                puts[who].append(small_put_ms(savers[who], f"small{r}{who}", 2, 25))
        small_cfg = {"configurable": {"thread_id": "small-long", "checkpoint_ns": ""}}
        for saver in savers.values():
            for conf, cp, md, new in small_items(saver, "small-long", small_n):
                saver.put(conf, cp, md, new)
            saver.get_tuple(small_cfg)
        with sync_cm["sutram"]() as cold:
            readers = {"peer": peer, "sutram": ours, "sutram_cold": cold}
            reads: dict[str, list[float]] = {k: [] for k in readers}
            for _ in range(300):
                for who, saver in readers.items():
                    t0 = time.perf_counter()
                    saver.get_tuple(small_cfg)
                    reads[who].append(time.perf_counter() - t0)
    for who in ("peer", "sutram"):
        res[who]["small_put_ms"] = statistics.median(puts[who])
        res[who]["small_get_ms"] = statistics.median(reads[who]) * 1e3
    res["sutram"]["small_get_cold_ms"] = statistics.median(reads["sutram_cold"]) * 1e3
    res["peer"]["small_get_cold_ms"] = res["peer"]["small_get_ms"]

    async def async_reads() -> None:
        async with async_cm["peer"]() as peer, async_cm["sutram"]() as ours:
            savers = {"peer": peer, "sutram": ours}
            samples: dict[str, list[float]] = {"peer": [], "sutram": []}
            for saver in savers.values():
                await saver.aget_tuple(cfg)
            for _ in range(30):
                for who, saver in savers.items():
                    t0 = time.perf_counter()
                    await saver.aget_tuple(cfg)
                    samples[who].append(time.perf_counter() - t0)
            for who in savers:
                res[who]["aget_tuple_ms"] = statistics.median(samples[who]) * 1e3

    asyncio.run(async_reads())
    opened: dict[str, dict[str, list[float]]] = {w: {"new": [], "existing": []} for w in ("peer", "sutram")}
    for i in range(12):  # alternated, as everything else
        for who in ("peer", "sutram") if i % 2 else ("sutram", "peer"):
            opened[who]["new"].append(backend.open_saver(who, f"r{i}"))
            opened[who]["existing"].append(backend.open_saver(who, f"r{i}"))
    for who in res:
        for kind in ("new", "existing"):
            res[who][f"open_{kind}_ms"] = statistics.median(opened[who][kind]) * 1e3
    for who in res:
        res[who]["bytes_mib"] = backend.bytes(who) / 2**20
    s, p = res["sutram"], res["peer"]
    return [
        ("graph workload, sync (super-steps/s)", s["graph_sync"], p["graph_sync"], "higher"),
        ("graph workload, async (super-steps/s)", s["graph_async"], p["graph_async"], "higher"),
        ("raw put+put_writes, sync (per s)", s["raw_sync"], p["raw_sync"], "higher"),
        ("raw put+put_writes, async (per s)", s["raw_async"], p["raw_async"], "higher"),
        (f"get_tuple latest, {long_thread}-checkpoint thread (ms)", s["get_tuple_ms"], p["get_tuple_ms"], "lower"),
        ("  the same, Sutram read by a fresh saver (ms)", s["get_tuple_cold_ms"], p["get_tuple_cold_ms"], "lower"),
        (f"aget_tuple latest, {long_thread}-checkpoint thread (ms)", s["aget_tuple_ms"], p["aget_tuple_ms"], "lower"),
        (f"list() of the {long_thread}-checkpoint thread (s)", s["list_s"], p["list_s"], "lower"),
        ("small state: put+put_writes latency, median (ms)", s["small_put_ms"], p["small_put_ms"], "lower"),
        (f"small state: get_tuple latest, {small_n}-checkpoint thread (ms)", s["small_get_ms"], p["small_get_ms"],
         "lower"),
        ("  the same, Sutram read by a fresh saver (ms)", s["small_get_cold_ms"], p["small_get_cold_ms"], "lower"),
        ("a saver on a new database, schema made (ms)", s["open_new_ms"], p["open_new_ms"], "lower"),
        ("a saver on a database that has the schema (ms)", s["open_existing_ms"], p["open_existing_ms"], "lower"),
        ("bytes on disk after all workloads (MiB)", s["bytes_mib"], p["bytes_mib"], "lower"),
        ("peak memory, list() of the long thread (MiB)", s["list_peak_mib"], p["list_peak_mib"], "lower"),
        ("peak memory, 50-step graph run (MiB)", s["graph_peak_mib"], p["graph_peak_mib"], "lower"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    ap.add_argument("--synchronous", default="NORMAL", help="SQLite synchronous setting for both savers")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    threads, steps, long_thread, raw_n = (2, 20, 50, 20) if args.quick else (20, 200, 1000, 200)
    backends: list[Backend] = []
    tmp = Path(tempfile.mkdtemp(prefix="sutram-bench-"))
    if args.backend in ("sqlite", "all"):
        backends.append(SqliteBackend(tmp, args.synchronous.upper()))
    pg_url = os.environ.get("SUTRAM_BENCH_PG_URL")
    if args.backend in ("postgresql", "all"):
        if pg_url:
            backends.append(PostgresBackend(pg_url))
        else:
            print("PostgreSQL skipped: set SUTRAM_BENCH_PG_URL (make bench does)")
    peers = {"sqlite": "SqliteSaver / AsyncSqliteSaver", "postgresql": "PostgresSaver / AsyncPostgresSaver"}
    results: dict[str, Any] = {}
    for b in backends:
        print(f"\n== {b.name}: SutramSaver vs {peers[b.name]} "
              f"({threads} threads x {steps} super-steps; raw {threads} x {raw_n}; long thread {long_thread})")
        rows = run(b, threads, steps, long_thread, raw_n)
        print(f"{'figure':58} {'Sutram':>11} {'peer':>11} {'Sutram/peer':>12}")
        for name, s, p, better in rows:
            ratio = s / p if p else float("inf")
            print(f"{name:58} {s:11.3f} {p:11.3f} {ratio:11.3f}x  ({better} is better)")
        results[b.name] = [{"figure": n, "sutram": s, "peer": p, "ratio": s / p if p else None, "better": bt}
                           for n, s, p, bt in rows]
        if isinstance(b, PostgresBackend):
            b.drop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
