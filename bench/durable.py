"""Durable-execution benchmark: the durable runner against the same graph with LangGraph's
own checkpointers (SqliteSaver, PostgresSaver), same process, same database engine.

    python bench/durable.py                 # SQLite, and PostgreSQL when SUTRAM_BENCH_PG_URL
                                            # is set (make bench does)
    python bench/durable.py --quick         # a small smoke run

Figures:
  step      per-step time of a 10-node graph run to completion on a new thread:
            durable(graph).invoke (checkpoints, ledger, journal scopes, lease; with and
            without its tracing), and the plain graph with SutramSaver, against
            graph.compile(checkpointer=peer).invoke, all with durability="sync"; and, when
            dbos is installed (make bench installs 3.4.0), a DBOS workflow of 10 steps on
            the same engine (SQLite: its own file, WAL and synchronous=NORMAL as Sutram's;
            PostgreSQL: a schema of its own on the same server), interleaved with the others
  journal   what journaling adds to one call: a fake chat model (no I/O), invoked and streamed,
            and a tool called with a tool-call id, inside a journal scope against the same
            calls outside one; and what answering a call from the journal costs (a replay)
  recover   wall time for one worker to recover 100 runs whose worker died mid-graph
  lease     a worker is SIGKILLed mid-node; another process polls recover() every 0.1 s:
            seconds from the death to the run's completion, against lease + 1 s
  repeats   LLM calls repeated after a SIGKILL between a node's 2nd and 3rd call: the
            durable runner against LangGraph alone (same saver family, durability="sync")
  llama     durable LlamaIndex workflows (bench/durable_llama.py): per step against the plain
            workflow and llama-agents-dbos, and SIGKILL-to-resumed time
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from langchain_core.caches import BaseCache  # noqa: E402
from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

from bench import durable_llama  # noqa: E402
from bench._pg import drop_schema, fresh_schema  # noqa: E402
from sutram_adapters.langgraph.durable import durable  # noqa: E402

NODES = 10


class Model(BaseChatModel):
    """A fake provider: answers at once, reports usage, logs each call when asked to."""

    @property
    def _llm_type(self) -> str:
        return "bench-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        log = os.environ.get("SUTRAM_BENCH_CALL_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{messages[-1].content}\n")
                f.flush()
                os.fsync(f.fileno())
        msg = AIMessage(content=f"answer to {messages[-1].content}",
                        usage_metadata={"input_tokens": 12, "output_tokens": 5, "total_tokens": 17},
                        response_metadata={"model_name": "gpt-4o-mini"})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        words = f"answer to {messages[-1].content}".split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield ChatGenerationChunk(message=AIMessageChunk(
                content=word + ("" if last else " "),
                usage_metadata={"input_tokens": 12, "output_tokens": 5, "total_tokens": 17} if last else None,
                response_metadata={"model_name": "gpt-4o-mini"} if last else {}))


@tool
def lookup(query: str) -> str:
    """A fake tool: answers at once."""
    return f"facts about {query}"


class Steps(TypedDict):
    n: int


def step_graph() -> Any:
    builder = StateGraph(Steps)
    previous = START
    for i in range(NODES):
        name = f"n{i}"
        builder.add_node(name, lambda s: {"n": s["n"] + 1})
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


class Research(TypedDict):
    topic: str
    answers: list[str]


def research(state: Research) -> dict[str, Any]:
    """Three model calls; SIGKILLs its own process before the third when asked to."""
    answers = []
    for i in range(3):
        if i == 2 and os.environ.get("SUTRAM_BENCH_KILL") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        if i == 2 and os.environ.get("SUTRAM_BENCH_CRASH") == "1":
            raise KeyboardInterrupt  # the process "dies" (nothing catches it as an error)
        answers.append(str(Model().invoke([HumanMessage(f"{state['topic']} question {i}")]).content))
    return {"answers": answers}


def research_graph() -> Any:
    builder = StateGraph(Research)
    builder.add_node("research", research)
    builder.add_node("summarise", lambda s: {"answers": [*s["answers"], "summary"]})
    builder.add_edge(START, "research")
    builder.add_edge("research", "summarise")
    builder.add_edge("summarise", END)
    return builder


# -- databases -------------------------------------------------------------------------------


class Db:
    """One benchmark database: a fresh SQLite file or a fresh PostgreSQL schema."""

    def __init__(self, name: str, root: Path, pg_url: str | None = None) -> None:
        self.name = name
        if name == "sqlite":
            self.path = root / f"durable-{uuid.uuid4().hex[:6]}.db"
            self.url = f"sqlite:///{self.path}"
            self.base = None
        else:
            assert pg_url
            self.url, self.schema = fresh_schema(pg_url)
            self.base = pg_url

    @contextmanager
    def peer(self) -> Iterator[Any]:
        if self.name == "sqlite":
            import sqlite3

            from langgraph.checkpoint.sqlite import SqliteSaver

            conn = sqlite3.connect(self.path.with_suffix(".peer.db"), check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                yield SqliteSaver(conn)
            finally:
                conn.close()
        else:
            from langgraph.checkpoint.postgres import PostgresSaver

            with PostgresSaver.from_conn_string(self.url) as saver:
                saver.setup()
                yield saver

    def drop(self) -> None:
        if self.base:
            drop_schema(self.base, self.schema)


# -- figures ---------------------------------------------------------------------------------


@contextmanager
def dbos_workflow(db: Db) -> Iterator[Any]:
    """A launched DBOS running a 10-step workflow on ``db``'s engine, or None without dbos."""
    try:
        from dbos import DBOS, DBOSConfig
    except ImportError:
        yield None
        return
    import logging

    import sqlalchemy as sa

    config: DBOSConfig = {"name": f"sutram-bench-{db.name}", "log_level": "WARNING", "console_log_level": "WARNING",
                          "application_version": "bench"}
    if db.name == "sqlite":
        path = db.path.with_suffix(".dbos.db")
        engine = sa.create_engine(f"sqlite:///{path}")

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi: Any, _record: Any) -> None:  # the durability Sutram's SQLite runs with
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
                dbapi.execute(f"PRAGMA {pragma}")

        config.update(system_database_url=f"sqlite:///{path}", system_database_engine=engine)
    else:
        assert db.base
        config.update(system_database_url=db.base, dbos_system_schema=f"dbos_{db.schema}")
    DBOS(config=config)

    @DBOS.step(name=f"bench_step_{db.name}")
    def add_one(n: int) -> int:
        return n + 1

    @DBOS.workflow(name=f"bench_workflow_{db.name}")
    def workflow(n: int) -> int:
        for _ in range(NODES):
            n = add_one(n)
        return n

    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    try:
        yield workflow
    finally:
        DBOS.destroy(destroy_registry=True)
        if db.name == "postgresql":
            drop_schema(db.base, f"dbos_{db.schema}")


def per_step(db: Db, runs: int) -> dict[str, float]:
    """ms per graph step: peer, Sutram with tracing, Sutram without, and DBOS when installed
    (halves in the order peer, Sutram, Sutram, peer so drift favours neither)."""
    with dbos_workflow(db) as workflow:
        return _per_step(db, runs, workflow)


def _per_step(db: Db, runs: int, workflow: Any) -> dict[str, float]:
    graph = step_graph()

    def peer_run(tag: str) -> float:
        with db.peer() as saver:
            compiled = graph.compile(checkpointer=saver)
            start = time.perf_counter()
            for i in range(runs // 2):
                compiled.invoke({"n": 0}, {"configurable": {"thread_id": f"p{tag}{i}"}}, durability="sync")
            return time.perf_counter() - start

    def sutram_run(tag: str, trace: bool) -> float:
        with durable(graph.compile(), url=db.url, tenant="bench", remember_runs=False, trace=trace) as runner:
            start = time.perf_counter()
            for i in range(runs // 2):
                runner.invoke({"n": 0}, thread_id=f"s{tag}{trace}{i}")
            return time.perf_counter() - start

    def saver_run(tag: str) -> float:
        from sutram_adapters.langgraph import SutramSaver

        with SutramSaver.from_url(db.url, tenant="bench") as saver:
            compiled = graph.compile(checkpointer=saver)
            start = time.perf_counter()
            for i in range(runs // 2):
                compiled.invoke({"n": 0}, {"configurable": {"thread_id": f"v{tag}{i}"}}, durability="sync")
            return time.perf_counter() - start

    def dbos_run() -> float:
        start = time.perf_counter()
        for _ in range(runs // 2):
            assert workflow(0) == NODES
        return time.perf_counter() - start

    sutram_run("warm", True)
    peer_run("warm")
    saver_run("warm")
    dbos_t = 0.0
    if workflow is not None:
        dbos_run()
        dbos_t += dbos_run()
    peer_t = peer_run("a")
    saver_t = saver_run("a")
    traced = sutram_run("a", True)
    plain = sutram_run("a", False)
    plain += sutram_run("b", False)
    traced += sutram_run("b", True)
    saver_t += saver_run("b")
    peer_t += peer_run("b")
    if workflow is not None:
        dbos_t += dbos_run()
    steps = (runs // 2) * 2 * NODES
    out = {"peer_ms": peer_t / steps * 1e3, "sutram_traced_ms": traced / steps * 1e3,
           "sutram_untraced_ms": plain / steps * 1e3, "sutram_saver_ms": saver_t / steps * 1e3}
    if workflow is not None:
        out["dbos_ms"] = dbos_t / steps * 1e3
    return out


def journal_cost(db: Db, calls: int) -> dict[str, float]:
    """ms per call of each kind (an invoked LLM call, a streamed one, a tool call with its
    tool-call id): made outside a durable task, made and recorded inside one, answered
    from the journal (a replay)."""
    from langchain_core.globals import get_llm_cache, set_llm_cache

    from sutram_adapters.langchain.journal import JournalCache
    from sutram_adapters.langchain.model_journal import install_model_journal
    from sutram_adapters.langchain.tool_journal import install_tool_journal
    from sutram_core.backends.sql.database import Database
    from sutram_core.backends.sql.journal import SqlCallJournal
    from sutram_core.runs import CallScope

    install_model_journal()
    install_tool_journal()
    model = Model()
    prompts = [[HumanMessage(f"question {i}")] for i in range(calls)]
    tool_calls = [{"name": "lookup", "args": {"query": f"q{i}"}, "id": f"call-{i}", "type": "tool_call"}
                  for i in range(calls)]
    kinds: dict[str, Any] = {
        "invoke": (prompts, model.invoke),
        "stream": (prompts, lambda p: list(model.stream(p))),
        "tool": (tool_calls, lookup.invoke),
    }
    before = get_llm_cache()
    database = Database(db.url)
    database.setup()
    journal = SqlCallJournal(database)
    out: dict[str, float] = {}
    try:
        set_llm_cache(None)
        for p in prompts[:20]:
            model.invoke(p)
        start = time.perf_counter()
        for p in prompts:
            model.invoke(p)
        keyed_bare = time.perf_counter() - start
        set_llm_cache(_NoCache())  # what LangChain's cache path costs by itself (its cache key)
        start = time.perf_counter()
        for p in prompts:
            model.invoke(p)
        out["langchain_cache_key_ms"] = (time.perf_counter() - start - keyed_bare) / calls * 1e3
        set_llm_cache(JournalCache())
        for kind, (items, call) in kinds.items():
            for item in items[:20]:
                call(item)
            start = time.perf_counter()
            for item in items:
                call(item)
            bare = time.perf_counter() - start
            with CallScope(journal, tenant="bench", thread_id=f"warm-{kind}", task_id="t"):
                for item in items[:20]:
                    call(item)
            thread = uuid.uuid4().hex
            start = time.perf_counter()
            with CallScope(journal, tenant="bench", thread_id=thread, task_id="t"):
                for item in items:
                    call(item)
            recorded = time.perf_counter() - start
            start = time.perf_counter()
            with CallScope(journal, tenant="bench", thread_id=thread, task_id="t") as scope:
                for item in items:
                    call(item)
            replayed = time.perf_counter() - start
            assert scope.replayed == calls, (kind, scope.replayed)
            prefix = "" if kind == "invoke" else f"{kind}_"
            out.update({f"{prefix}bare_ms": bare / calls * 1e3, f"{prefix}journaled_ms": recorded / calls * 1e3,
                        f"{prefix}added_ms": (recorded - bare) / calls * 1e3,
                        f"{prefix}replay_ms": replayed / calls * 1e3})
    finally:
        set_llm_cache(before)
        database.close()
    return out


class _NoCache(BaseCache):
    """A LangChain cache that never answers: the cost of LangChain's cache path alone."""

    def lookup(self, prompt: str, llm_string: str) -> Any:
        return None

    def update(self, prompt: str, llm_string: str, return_val: Any) -> None:
        return None

    def clear(self, **kwargs: Any) -> None:
        return None


def recover_many(db: Db, runs: int) -> float:
    """Seconds for one worker to recover ``runs`` runs whose worker died mid-node."""
    graph = research_graph().compile()
    os.environ["SUTRAM_BENCH_CRASH"] = "1"
    try:
        with durable(graph, url=db.url, tenant="bench", lease_seconds=0.5, remember_runs=False,
                     trace=False) as runner:
            for i in range(runs):
                try:
                    runner.invoke({"topic": f"t{i}", "answers": []}, thread_id=f"crash{i}")
                except KeyboardInterrupt:
                    pass
    finally:
        os.environ.pop("SUTRAM_BENCH_CRASH")
    time.sleep(0.6)
    with durable(graph, url=db.url, tenant="bench", lease_seconds=30, remember_runs=False, trace=False) as runner:
        start = time.perf_counter()
        done = runner.recover(limit=runs)
        elapsed = time.perf_counter() - start
    assert len(done) == runs and all(r.status.value == "completed" for r in done), done[:3]
    return elapsed


def _worker(mode: str, url: str, thread_id: str) -> None:
    """A benchmark child process: run the research graph on ``thread_id``."""
    graph = research_graph()
    if mode == "sutram":
        with durable(graph.compile(), url=url, tenant="bench", lease_seconds=float(os.environ.get(
                "SUTRAM_BENCH_LEASE", "30")), remember_runs=False, trace=False) as runner:
            runner.invoke({"topic": thread_id, "answers": []}, thread_id=thread_id, run_id=thread_id)
        return
    db = Db.__new__(Db)
    db.name, db.url = ("sqlite", url) if url.startswith("sqlite") else ("postgresql", url)
    if db.name == "sqlite":
        db.path = Path(url.removeprefix("sqlite:///"))
    with db.peer() as saver:
        config = {"configurable": {"thread_id": thread_id}}
        compiled = graph.compile(checkpointer=saver)
        compiled.invoke(None if mode == "peer-resume" else {"topic": thread_id, "answers": []}, config,
                        durability="sync")


def _child(mode: str, url: str, thread_id: str, log: Path, kill: bool, lease: float = 30) -> subprocess.Popen[str]:
    env = {**os.environ, "SUTRAM_BENCH_CALL_LOG": str(log), "SUTRAM_BENCH_KILL": "1" if kill else "0",
           "SUTRAM_BENCH_LEASE": str(lease), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, __file__, "--worker", mode, url, thread_id], env=env, text=True,
                            stderr=subprocess.PIPE)


def repeats(db: Db, trials: int, root: Path) -> dict[str, list[int]]:
    """Calls repeated after a SIGKILL before a node's third call, per trial."""
    out: dict[str, list[int]] = {"langgraph": [], "sutram": []}
    for trial in range(trials):
        for who in ("langgraph", "sutram"):
            log = root / f"calls-{who}-{db.name}-{trial}.log"
            thread = f"{who}-{trial}-{uuid.uuid4().hex[:6]}"
            mode = "sutram" if who == "sutram" else "peer"
            killed = _child(mode, db.url, thread, log, kill=True, lease=0.5)
            killed.wait(120)
            assert killed.returncode == -signal.SIGKILL, killed.stderr.read() if killed.stderr else ""
            if who == "sutram":
                time.sleep(0.6)
                with durable(research_graph().compile(), url=db.url, tenant="bench", remember_runs=False,
                             trace=False) as runner:
                    resumed = [r.status.value for r in runner.recover(limit=1)]
                    assert resumed == ["completed"], resumed
            else:
                resume = _child("peer-resume", db.url, thread, log, kill=False)
                resume.wait(120)
                assert resume.returncode == 0, resume.stderr.read() if resume.stderr else ""
            made = log.read_text().splitlines()
            out[who].append(len(made) - len(set(made)))
    return out


def lease_to_resume(db: Db, lease: float, trials: int, root: Path) -> list[float]:
    """Seconds from a worker's SIGKILL to its run's completion by a polling recoverer."""
    got = []
    graph = research_graph().compile()
    with durable(graph, url=db.url, tenant="bench", lease_seconds=lease, remember_runs=False, trace=False) as runner:
        for trial in range(trials):
            thread = f"lease-{trial}-{uuid.uuid4().hex[:6]}"
            child = _child("sutram", db.url, thread, root / f"lease-{db.name}-{trial}.log", kill=True, lease=lease)
            child.wait(120)
            died = time.monotonic()
            while True:
                if runner.recover(limit=1):
                    break
                time.sleep(0.1)
            got.append(time.monotonic() - died)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--worker", nargs=3, metavar=("MODE", "URL", "THREAD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(*args.worker)
        return
    runs, calls, recover_n, trials, lease = (10, 100, 10, 1, 1.0) if args.quick else (100, 2000, 100, 3, 2.0)
    root = Path(tempfile.mkdtemp(prefix="sutram-bench-durable-"))
    names = ["sqlite"] if args.backend in ("sqlite", "all") else []
    pg_url = os.environ.get("SUTRAM_BENCH_PG_URL")
    if args.backend in ("postgresql", "all"):
        if pg_url:
            names.append("postgresql")
        else:
            print("PostgreSQL skipped: set SUTRAM_BENCH_PG_URL (make bench does)")
    results: dict[str, Any] = {}
    for name in names:
        db = Db(name, root, pg_url)
        peer = "SqliteSaver" if name == "sqlite" else "PostgresSaver"
        try:
            step = per_step(db, runs)
            cost = journal_cost(db, calls)
            recovered = recover_many(db, recover_n)
            repeated = repeats(db, trials, root)
            resumed = lease_to_resume(db, lease, trials, root)
        finally:
            db.drop()
        llama_db = Db(name, root, pg_url)
        try:
            llama = durable_llama.figures(name, llama_db.url, args.quick, root)
        finally:
            llama_db.drop()
        results[name] = {"step": step, "journal": cost, "recover_seconds": recovered, "recover_runs": recover_n,
                         "repeats": repeated, "lease_seconds": lease, "death_to_done_seconds": resumed,
                         "llama": llama}
        print(f"\n== {name}: durable runner vs LangGraph with {peer} (durability=sync both)")
        _row(f"per step, {NODES}-node graph, {runs} runs (ms)", step["sutram_traced_ms"], step["peer_ms"])
        _row("per step, runner without tracing (ms)", step["sutram_untraced_ms"], step["peer_ms"])
        _row("per step, plain graph with SutramSaver (ms)", step["sutram_saver_ms"], step["peer_ms"])
        if "dbos_ms" in step:
            _row("per step, runner without tracing vs DBOS 3.4 (ms)", step["sutram_untraced_ms"], step["dbos_ms"])
            _row("per step, runner with tracing vs DBOS 3.4 (ms)", step["sutram_traced_ms"], step["dbos_ms"])
        else:
            print("DBOS skipped: pip install dbos==3.4.0 (make bench does)")
        print(f"{'added per step, traced / untraced (ms)':58} {step['sutram_traced_ms'] - step['peer_ms']:11.3f} "
              f"{step['sutram_untraced_ms'] - step['peer_ms']:11.3f}")
        _row("LLM call, journaled vs no cache (ms)", cost["journaled_ms"], cost["bare_ms"])
        print(f"{'journaling added per LLM call (ms, target <= 0.5 on SQLite)':58} {cost['added_ms']:11.3f}")
        print(f"{'  of which LangChain computing its cache key (ms)':58} {cost['langchain_cache_key_ms']:11.3f}")
        print(f"{'LLM call answered from the journal (ms)':58} {cost['replay_ms']:11.3f}")
        _row("streamed LLM call, journaled vs not (ms)", cost["stream_journaled_ms"], cost["stream_bare_ms"])
        print(f"{'journaling added per streamed call / its replay (ms)':58} {cost['stream_added_ms']:11.3f} "
              f"{cost['stream_replay_ms']:11.3f}")
        _row("tool call, journaled vs not (ms)", cost["tool_journaled_ms"], cost["tool_bare_ms"])
        print(f"{'journaling added per tool call / its replay (ms)':58} {cost['tool_added_ms']:11.3f} "
              f"{cost['tool_replay_ms']:11.3f}")
        print(f"{f'recover {recover_n} interrupted runs, one worker (s)':58} {recovered:11.3f}"
              f"   ({recovered / recover_n * 1e3:.1f} ms per run)")
        print(f"{'calls repeated after a mid-node SIGKILL, per trial':58} Sutram {repeated['sutram']}  "
              f"LangGraph {repeated['langgraph']}")
        print(f"{f'death -> run completed by a poller, lease {lease:g} s (s)':58} "
              f"{' '.join(f'{x:.2f}' for x in resumed)}   (target <= {lease + 1:g})")
        durable_llama.report(name, llama)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _row(name: str, sutram: float, peer: float) -> None:
    print(f"{name:58} {sutram:11.3f} {peer:11.3f} {sutram / peer:11.3f}x  Sutram/peer")


if __name__ == "__main__":
    main()
