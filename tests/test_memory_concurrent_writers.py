"""Many writers of one key at once, from several threads in several processes, on both databases.

PostgreSQL's stores serialize concurrent puts of a key; Sutram must too: no error, the last
put of the key wins, every procedural version is kept in one unbroken chain, and ``add``,
``supersede`` and ``SutramStore.put`` beside them do not fail.
"""

from __future__ import annotations

import multiprocessing
import threading
from itertools import pairwise
from typing import Any

from sutram_adapters.langgraph import SutramStore
from sutram_core.memory import MemoryKind, MemoryStore
from tests.memory_support import WordHashEmbedder

PROCESSES = 2
THREADS = 8
ROUNDS = 6
NS = ("shared",)


def _writer(url: str, process: int, errors: Any) -> None:
    """One process: THREADS threads, each writing the shared keys ROUNDS times."""
    memory = MemoryStore.from_url(url, tenant="acme", embedder=WordHashEmbedder())
    lg = SutramStore.from_url(url, tenant="acme", index=False)
    start = threading.Barrier(THREADS)
    failures: list[str] = []

    def work(thread: int) -> None:
        me = f"p{process}t{thread}"
        start.wait()
        for i in range(ROUNDS):
            try:
                memory.put(NS, "k", {"text": f"value from {me}", "writer": me, "i": i})
                memory.put(NS, "proc", {"text": f"step {me} {i}"}, kind=MemoryKind.PROCEDURAL)
                memory.add(NS, "the user drinks green tea")  # near-duplicates of each other
                if i == 0:
                    memory.put(NS, f"fact-{me}-0", {"text": f"first fact of {me}"})
                else:  # a chain of facts, each closing the one before
                    memory.supersede((NS, f"fact-{me}-{i - 1}"), f"fact {i} of {me}", key=f"fact-{me}-{i}")
                lg.put(NS, "lg", {"writer": me, "i": i})
            except Exception as exc:
                failures.append(f"{me} round {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lg.close()
    memory.close()
    errors.put(failures)


def test_concurrent_writers_of_one_key_serialize_without_errors(db_url: str) -> None:
    with MemoryStore.from_url(db_url, tenant="acme", embedder=WordHashEmbedder()):
        pass  # the schema exists before the writers race
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(db_url, p, errors)) for p in range(PROCESSES)]
    for p in procs:
        p.start()
    failures = [f for _ in procs for f in errors.get(timeout=600)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert failures == []

    with MemoryStore.from_url(db_url, tenant="acme", embedder=WordHashEmbedder()) as memory:
        # last writer wins: each writer's writes are in order, so the last one committed is
        # some writer's last round
        final = memory.get(NS, "k")
        assert final is not None and final.value["i"] == ROUNDS - 1
        assert len(memory.history(NS, "k")) == 1

        # procedures: every version kept, numbered 1..n, one current, each superseding the last
        versions = memory.history(NS, "proc")
        writes = PROCESSES * THREADS * ROUNDS
        assert [v.version for v in versions] == list(range(1, writes + 1))
        assert [v.valid_to is None for v in versions].count(True) == 1 and versions[-1].valid_to is None
        assert all(later.supersedes == earlier.id for earlier, later in pairwise(versions))

        # supersede: each writer's chain ends in its last fact, the earlier ones closed
        for p in range(PROCESSES):
            for t in range(THREADS):
                me = f"p{p}t{t}"
                assert [memory.get(NS, f"fact-{me}-{i}") is not None for i in range(ROUNDS)] == \
                    [False] * (ROUNDS - 1) + [True]

    with SutramStore.from_url(db_url, tenant="acme", index=False) as lg:
        item = lg.get(NS, "lg")
        assert item is not None and item.value["i"] == ROUNDS - 1


def _in_threads(url: str, process: int, body: Any, errors: Any) -> None:
    """One process: ``body(memory, process, thread)`` in THREADS threads started together;
    what the bodies return is put on ``errors``."""
    memory = MemoryStore.from_url(url, tenant="acme", embedder=WordHashEmbedder())
    start = threading.Barrier(THREADS)
    reported: list[str] = []

    def work(thread: int) -> None:
        start.wait()
        reported.extend(body(memory, process, thread))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    memory.close()
    errors.put(reported)


def _race(url: str, body: Any) -> list[str]:
    """Run ``body`` in THREADS threads of each of PROCESSES processes at once; what they reported."""
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_in_threads, args=(url, p, body, errors)) for p in range(PROCESSES)]
    for p in procs:
        p.start()
    reported = [r for _ in procs for r in errors.get(timeout=600)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return reported


def _add_twice(memory: MemoryStore, process: int, thread: int) -> list[str]:
    failures = []
    for i in range(ROUNDS):
        try:
            memory.add(("facts",), "the user drinks green tea", value={"by": f"p{process}t{thread}", "i": i})
            memory.add(("facts",), "the user lives in Lisbon")
        except Exception as exc:
            failures.append(f"p{process}t{thread} round {i}: {type(exc).__name__}: {exc}")
    return failures


def test_concurrent_adds_of_one_fact_keep_one_memory(db_url: str) -> None:
    with MemoryStore.from_url(db_url, tenant="acme", embedder=WordHashEmbedder()):
        pass
    assert _race(db_url, _add_twice) == []
    with MemoryStore.from_url(db_url, tenant="acme", embedder=WordHashEmbedder()) as memory:
        # near-duplicates update the memory already there instead of adding another
        assert sorted(r.text for r in memory.list(("facts",), limit=100)) == [
            "the user drinks green tea", "the user lives in Lisbon"]


def _supersede_city(memory: MemoryStore, process: int, thread: int) -> list[str]:
    from sutram_core.errors import InvalidMemoryError

    try:
        memory.supersede((("race",), "city"), f"the user moved to city {process}-{thread}")
        return ["won"]
    except InvalidMemoryError:
        return ["lost"]  # another writer closed the fact first: nothing to supersede
    except Exception as exc:
        return [f"{type(exc).__name__}: {exc}"]


def test_racing_supersedes_of_one_fact_leave_one_successor(db_url: str) -> None:
    with MemoryStore.from_url(db_url, tenant="acme", embedder=WordHashEmbedder()) as memory:
        old = memory.put(("race",), "city", {"text": "the user lives in Lisbon"})
    outcomes = _race(db_url, _supersede_city)
    assert sorted(set(outcomes)) <= ["lost", "won"], outcomes
    assert outcomes.count("won") == 1
    with MemoryStore.from_url(db_url, tenant="acme", embedder=WordHashEmbedder()) as memory:
        current = memory.list(("race",), limit=100)
        assert len(current) == 1 and current[0].supersedes == old.id
