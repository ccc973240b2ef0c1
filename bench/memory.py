"""Memory benchmark: Sutram memory against LangGraph's InMemoryStore and PostgresStore,
same process, same data, same queries. Prints each figure and the ratio.

    python bench/memory.py                    # 100,000 memories; PostgreSQL too when
                                              # SUTRAM_BENCH_PG_URL is set, Weaviate when
                                              # SUTRAM_BENCH_WEAVIATE_URL is (make bench)
    python bench/memory.py --n 20000          # smaller
    python bench/memory.py --smoke            # tiny: checks that the benchmark runs
    python bench/memory.py --quality-only     # only the MRR table of the labelled sets

Data: N memories of 384 dimensions, vectors clustered around 100 centroids (each cluster
spread along 16 directions of its own, plus a little isotropic noise), each with a
text of 12 pseudo-words (6 from its cluster's topic words) and a ``bucket`` field (0-9, so
``{"bucket": 3}`` selects 10%). Embeddings are precomputed: the embedder is a lookup table,
so the figures measure the stores, not a model. Queries are a memory's vector plus noise
and 5 of its words.

Figures: ingest rate (records/s, batches of 1,000); query latency p50/p95 for vector,
keyword and hybrid search and for 10% filtered search; recall@10 of each vector path
against exact search over the same rows; memory growth (RSS) of InMemoryStore. Then the
retrieval quality (MRR@10) of each labelled set under ``tests/data/`` (the real MiniLM
embedder), Sutram's three search modes beside LangGraph's stores.
PostgresStore's ingest rate is measured through its API on the first 2,000 items; the rest
is loaded with COPY into its own tables so that its queries run at full size too.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._pg import drop_schema, fresh_schema
from sutram_core.memory import MemoryStore

DIMS = 384
BATCH = 1000
_SYLLABLES = ["ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "po", "ta", "ne", "bi", "zo", "fu", "ge"]


class Dataset:
    """The memories, their vectors and the queries (deterministic for a seed)."""

    def __init__(self, n: int, queries: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        vocab = sorted({"".join(rng.choice(_SYLLABLES, size=3)) for _ in range(6000)})
        clusters = 100
        centroids = rng.normal(size=(clusters, DIMS)).astype(np.float32)
        topic = [rng.choice(len(vocab), size=30, replace=False) for _ in range(clusters)]
        self.cluster = rng.integers(0, clusters, size=n)
        # each cluster spreads along 16 directions of its own (texts on one topic vary in a
        # few ways, as sentence embeddings do), plus a little isotropic noise
        bases = rng.normal(size=(clusters, 16, DIMS)).astype(np.float32) / 4.0
        spread = rng.normal(size=(n, 16)).astype(np.float32)
        noise = rng.normal(scale=0.2, size=(n, DIMS)).astype(np.float32)
        vecs = centroids[self.cluster] + np.einsum("nk,nkd->nd", spread, bases[self.cluster]) + noise
        self.vectors = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        self.texts = []
        for i in range(n):
            words = [vocab[w] for w in rng.choice(topic[self.cluster[i]], size=6, replace=False)]
            words += [vocab[w] for w in rng.integers(0, len(vocab), size=6)]
            rng.shuffle(words)
            self.texts.append(f"{' '.join(words)} #{i}")
        self.buckets = np.arange(n) % 10
        picks = rng.integers(0, n, size=queries)
        q = self.vectors[picks] + rng.normal(scale=0.03, size=(queries, DIMS)).astype(np.float32)
        self.query_vectors = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
        self.query_texts = [" ".join(self.texts[p].split()[:5]) + f" ?q{j}" for j, p in enumerate(picks)]
        self.lookup: dict[str, np.ndarray] = {t: self.vectors[i] for i, t in enumerate(self.texts)}
        self.lookup.update({t: self.query_vectors[j] for j, t in enumerate(self.query_texts)})

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The precomputed vector of each text (the benchmark's embedder)."""
        return [self.lookup[t].tolist() for t in texts]

    def exact_top(self, qi: int, k: int, mask: np.ndarray | None = None) -> list[int]:
        scores = self.vectors @ self.query_vectors[qi]
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        return [int(i) for i in np.argsort(-scores)[:k]]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def timed(fn: Callable[[int], Any], count: int) -> list[float]:
    out = []
    for i in range(count):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def recall(data: Dataset, queries: int, keys_of: Callable[[int, dict[str, Any] | None], list[int]]) -> tuple[float, float]:
    """Mean recall@10 against exact search, unfiltered and with ``{"bucket": 3}``;
    ``keys_of(query index, filter)`` returns the row numbers a store found."""
    mask = data.buckets == 3
    plain, filtered = [], []
    for qi in range(min(queries, 50)):
        plain.append(len(set(keys_of(qi, None)) & set(data.exact_top(qi, 10))) / 10)
        filtered.append(len(set(keys_of(qi, {"bucket": 3})) & set(data.exact_top(qi, 10, mask))) / 10)
    return statistics.mean(plain), statistics.mean(filtered)


def peer_ingest(store: Any, data: Dataset, stop: int) -> float:
    """Put memories 0..stop into a LangGraph store in batches; return records/s."""
    from langgraph.store.base import PutOp

    t0 = time.perf_counter()
    for start in range(0, stop, BATCH):
        store.batch([PutOp(("docs", f"c{data.cluster[i] % 20}"), f"m{i}",
                           {"text": data.texts[i], "bucket": int(data.buckets[i])})
                     for i in range(start, min(stop, start + BATCH))])
    return stop / (time.perf_counter() - t0)


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


# -- Sutram -------------------------------------------------------------------------------------


def scratch_weaviate(url: str) -> str:
    """``url`` with a collection of its own (dropped by :func:`bench_sutram` afterwards)."""
    return f"{url}{'&' if '?' in url else '?'}collection=SutramBench{os.urandom(4).hex()}"


def close_store(store: MemoryStore) -> None:
    drop = getattr(store.backend, "drop", None)  # a Weaviate scratch collection
    if drop is not None:
        drop()
    store.close()


def bench_sutram(url: str, data: Dataset, queries: int, label: str) -> dict[str, Any]:
    store = MemoryStore.from_url(url, tenant="bench", embedder=data.embed, dedupe_threshold=None)
    n = len(data.texts)
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        records = [
            store.make_record(("docs", f"c{data.cluster[i] % 20}"), f"m{i}",
                              {"text": data.texts[i], "bucket": int(data.buckets[i])}, data.texts[i], "semantic",
                              None, None, None, None)
            for i in range(start, min(n, start + BATCH))
        ]
        for i, rec in zip(range(start, start + len(records)), records, strict=True):
            rec.embedding = data.vectors[i]
        store.put_many(records)
    ingest_s = time.perf_counter() - t0
    ingest = n / ingest_s
    out: dict[str, Any] = {"ingest_per_s": ingest}
    pgvector = getattr(store.backend, "pgvector", None)
    if pgvector is not None:
        # PostgreSQL indexes vectors off the write path: wait until the HNSW index has them all
        t1 = time.perf_counter()
        while pgvector.index_pending() or pgvector.pending():
            pass
        out["indexed_per_s"] = n / (ingest_s + time.perf_counter() - t1)
    t0 = time.perf_counter()
    store.search(data.query_texts[0], mode="vector", limit=10)
    first = (time.perf_counter() - t0) * 1000
    out["first_query_ms"] = first
    for mode in ("vector", "keyword", "hybrid"):
        lat = timed(lambda i, m=mode: store.search(data.query_texts[i % queries], mode=m, limit=10), queries)
        out[f"{mode}_p50_ms"], out[f"{mode}_p95_ms"] = pct(lat, 50), pct(lat, 95)
    for mode in ("vector", "hybrid"):
        lat = timed(lambda i, m=mode: store.search(data.query_texts[i % queries], mode=m, filter={"bucket": 3},
                                                   limit=10), queries)
        out[f"filtered_{mode}_p50_ms"], out[f"filtered_{mode}_p95_ms"] = pct(lat, 50), pct(lat, 95)
    out["recall_at_10"], out["filtered_recall_at_10"] = recall(data, queries, lambda qi, f: [
        int(h.record.key[1:]) for h in store.search(data.query_texts[qi], mode="vector", limit=10, filter=f)])
    close_store(store)
    indexed = f" (all in the vector index: {out['indexed_per_s']:,.0f}/s)" if "indexed_per_s" in out else ""
    print(f"  {label}: ingest {ingest:,.0f}/s{indexed}; first query {first:.0f} ms; "
          + "; ".join(f"{m} p50 {out[m + '_p50_ms']:.1f} ms" for m in ("vector", "keyword", "hybrid"))
          + f"; filtered vector p50 {out['filtered_vector_p50_ms']:.1f} ms, hybrid {out['filtered_hybrid_p50_ms']:.1f} ms"
          + f"; recall@10 {out['recall_at_10']:.3f} (filtered {out['filtered_recall_at_10']:.3f})")
    return out


# -- peers ------------------------------------------------------------------------------------


def bench_in_memory(data: Dataset, queries: int) -> dict[str, Any]:
    from langgraph.store.memory import InMemoryStore

    gc.collect()
    before = rss_mib()
    store = InMemoryStore(index={"dims": DIMS, "embed": data.embed, "fields": ["text"]})
    ingest = peer_ingest(store, data, len(data.texts))
    grown = rss_mib() - before
    lat = timed(lambda i: store.search(("docs",), query=data.query_texts[i], limit=10), queries)
    flat = timed(lambda i: store.search(("docs",), query=data.query_texts[i], filter={"bucket": 3}, limit=10), queries)
    out = {"ingest_per_s": ingest, "vector_p50_ms": pct(lat, 50), "vector_p95_ms": pct(lat, 95),
           "filtered_vector_p50_ms": pct(flat, 50), "rss_growth_mib": grown}
    print(f"  InMemoryStore: ingest {ingest:,.0f}/s; vector p50 {out['vector_p50_ms']:.1f} ms; "
          f"filtered p50 {out['filtered_vector_p50_ms']:.1f} ms; RSS +{grown:,.0f} MiB ({queries} queries)")
    store = None  # let the peer's memory go before the next phase
    gc.collect()
    return out


def bench_postgres_store(url: str, data: Dataset, queries: int) -> dict[str, Any]:
    import psycopg
    from langgraph.store.postgres import PostgresStore
    from pgvector.psycopg import register_vector

    index = {"dims": DIMS, "embed": data.embed, "fields": ["text"]}
    n = len(data.texts)
    sample = min(2000, n)
    with PostgresStore.from_conn_string(url, index=index) as store:  # type: ignore[arg-type]
        store.setup()
        ingest = peer_ingest(store, data, sample)
        # the rest through COPY into its own tables (its API would take minutes at this size)
        with psycopg.connect(url, autocommit=True) as conn:
            register_vector(conn)
            # its HNSW index is rebuilt after the load (same definition as its setup made)
            definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                      "'store_vectors_embedding_idx'").fetchone()
            conn.execute("DROP INDEX IF EXISTS store_vectors_embedding_idx")
            with conn.cursor() as cur:
                with cur.copy("COPY store (prefix, key, value) FROM STDIN") as copy:
                    for i in range(sample, n):
                        copy.write_row((f"docs.c{data.cluster[i] % 20}", f"m{i}",
                                        json.dumps({"text": data.texts[i], "bucket": int(data.buckets[i])})))
                with cur.copy("COPY store_vectors (prefix, key, field_name, embedding) FROM STDIN "
                              "WITH (FORMAT BINARY)") as copy:
                    copy.set_types(["text", "text", "text", "vector"])
                    for i in range(sample, n):
                        copy.write_row((f"docs.c{data.cluster[i] % 20}", f"m{i}", "text", data.vectors[i]))
            if definition:
                conn.execute("SET maintenance_work_mem = '1GB'")
                conn.execute(definition[0])
            conn.execute("ANALYZE store")
            conn.execute("ANALYZE store_vectors")
        lat = timed(lambda i: store.search(("docs",), query=data.query_texts[i % queries], limit=10), queries)
        flat = timed(lambda i: store.search(("docs",), query=data.query_texts[i % queries], filter={"bucket": 3},
                                            limit=10), queries)
        found = recall(data, queries, lambda qi, f: [
            int(h.key[1:]) for h in store.search(("docs",), query=data.query_texts[qi], limit=10, filter=f)])
    out = {"ingest_per_s": ingest, "vector_p50_ms": pct(lat, 50), "vector_p95_ms": pct(lat, 95),
           "filtered_vector_p50_ms": pct(flat, 50), "filtered_vector_p95_ms": pct(flat, 95),
           "recall_at_10": found[0], "filtered_recall_at_10": found[1]}
    print(f"  PostgresStore: ingest {ingest:,.0f}/s (API, first {sample}); vector p50 {out['vector_p50_ms']:.1f} ms; "
          f"filtered p50 {out['filtered_vector_p50_ms']:.1f} ms; recall@10 {out['recall_at_10']:.3f} "
          f"(filtered {out['filtered_recall_at_10']:.3f})")
    return out


# -- retrieval quality on the labelled sets --------------------------------------------------------


def quality(sets: Sequence[str], pg: str | None, wv: str | None = None) -> dict[str, Any]:
    """MRR@10 on each labelled set (tests/data): Sutram's vector, keyword and default search
    on SQLite (and PostgreSQL), and LangGraph's InMemoryStore (and PostgresStore) with the
    same embedder (the offline MiniLM), which search by vector only."""
    from langgraph.store.memory import InMemoryStore

    from sutram_adapters.langgraph.store import _EmbedderEmbeddings
    from sutram_core.memory.embedders import default_embedder
    from tests.memory_eval import fill, load_set, mrr, store_search

    embedder = default_embedder()
    embeddings = _EmbedderEmbeddings(embedder)
    out: dict[str, Any] = {}

    def peer_search(store: Any) -> Callable[[str, dict[str, Any]], list[str]]:
        return lambda question, q: [h.key for h in store.search(("m",), query=question, limit=10)]

    def peer_fill(store: Any, data: dict[str, Any]) -> list[dict[str, Any]]:
        # LangGraph's stores have no "as of": they hold the current facts only, and the
        # questions about superseded ones are left out for them
        closed = {m["key"] for m in data["memories"] if "superseded_by" in m}
        for m in data["memories"]:
            if m["key"] not in closed:
                store.put(("m",), m["key"], {"text": m["text"]})
        return [q for q in data["questions"] if not q.get("as_of")]

    for name in sets:
        data = load_set(name)
        row: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("sqlite", f"sqlite:///{Path(tmp) / 'quality.db'}", None)]
            if pg:
                url, schema = fresh_schema(pg)
                targets.append(("postgres", url, schema))
            if wv:
                targets.append(("weaviate", scratch_weaviate(wv), None))
            for label, url, schema in targets:
                store = MemoryStore.from_url(url, tenant="quality", embedder=embedder)
                try:
                    fill(store, data)
                    for mode in ("vector", "keyword", "hybrid"):
                        row[f"{label}_{mode}"] = mrr(store_search(store, mode), data["questions"])
                finally:
                    close_store(store)
                    if schema and pg:
                        drop_schema(pg, schema)
        index = {"dims": embedder.dims or len(embedder.embed_query("probe")), "embed": embeddings, "fields": ["text"]}
        peer = InMemoryStore(index=index)  # type: ignore[arg-type]
        row["in_memory_store"] = mrr(peer_search(peer), peer_fill(peer, data))
        if pg:
            from langgraph.store.postgres import PostgresStore

            url, schema = fresh_schema(pg)
            try:
                with PostgresStore.from_conn_string(url, index=index) as ps:  # type: ignore[arg-type]
                    ps.setup()
                    row["postgres_store"] = mrr(peer_search(ps), peer_fill(ps, data))
            finally:
                drop_schema(pg, schema)
        out[name] = row
    print("\nRetrieval quality, MRR@10 (default = Sutram's hybrid search; LangGraph's stores search by vector)")
    cols = [c for c in ("sqlite_vector", "sqlite_keyword", "sqlite_hybrid", "postgres_vector", "postgres_keyword",
                        "postgres_hybrid", "weaviate_vector", "weaviate_keyword", "weaviate_hybrid",
                        "in_memory_store", "postgres_store") if c in next(iter(out.values()))]
    print("  " + "set".ljust(14) + "".join(c.replace("_hybrid", "_default").rjust(18) for c in cols))
    for name, row in out.items():
        print("  " + name.ljust(14) + "".join(f"{row[c]:18.3f}" for c in cols))
    return out


# -- main ---------------------------------------------------------------------------------------


def ratio_line(name: str, ours: float, peer: float, lower_is_better: bool = True, digits: int = 1) -> str:
    r = ours / peer if peer else float("nan")
    return f"  {name:<42} Sutram {ours:>10,.{digits}f}   peer {peer:>10,.{digits}f}   Sutram/peer {r:6.3f}x" + (
        "" if lower_is_better else " (higher is better)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--peer-queries", type=int, default=5, help="InMemoryStore queries (each scans everything)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the benchmark runs")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quality-only", action="store_true", help="only the retrieval quality table")
    args = ap.parse_args()
    from tests.memory_eval import SET_NAMES

    pg = os.environ.get("SUTRAM_BENCH_PG_URL")
    wv = os.environ.get("SUTRAM_BENCH_WEAVIATE_URL")
    if args.quality_only:
        quality(SET_NAMES, pg, wv)
        return 0
    if args.smoke:
        args.n, args.queries, args.peer_queries = 3000, 10, 3
    print(f"memory benchmark: {args.n:,} memories x {DIMS} dims, {args.queries} queries")
    t0 = time.perf_counter()
    data = Dataset(args.n, max(args.queries, args.peer_queries))
    print(f"  data built in {time.perf_counter() - t0:.1f} s")
    results: dict[str, Any] = {"n": args.n, "dims": DIMS}

    with tempfile.TemporaryDirectory() as tmp:
        results["sutram_sqlite"] = bench_sutram(f"sqlite:///{Path(tmp) / 'memory.db'}", data, args.queries,
                                                "Sutram on SQLite")
    results["in_memory_store"] = bench_in_memory(data, args.peer_queries)
    if pg:
        url, schema = fresh_schema(pg)
        try:
            results["sutram_postgres"] = bench_sutram(url, data, args.queries, "Sutram on PostgreSQL")
        finally:
            drop_schema(pg, schema)
        url, schema = fresh_schema(pg)
        try:
            results["postgres_store"] = bench_postgres_store(url, data, args.queries)
        finally:
            drop_schema(pg, schema)
    else:
        print("  SUTRAM_BENCH_PG_URL is not set: PostgreSQL figures skipped (make bench sets it)")
    if wv:
        results["sutram_weaviate"] = bench_sutram(scratch_weaviate(wv), data, args.queries, "Sutram on Weaviate")
    else:
        print("  SUTRAM_BENCH_WEAVIATE_URL is not set: Weaviate figures skipped (make bench sets it)")

    s, m = results["sutram_sqlite"], results["in_memory_store"]
    print("\nSutram on SQLite vs InMemoryStore")
    print(ratio_line("ingest (records/s)", s["ingest_per_s"], m["ingest_per_s"], lower_is_better=False))
    print(ratio_line("vector query p50 (ms)", s["vector_p50_ms"], m["vector_p50_ms"]))
    print(ratio_line("filtered query p50 (ms)", s["filtered_vector_p50_ms"], m["filtered_vector_p50_ms"]))
    print(f"  SQLite hybrid p50 {s['hybrid_p50_ms']:.1f} ms (target <= 20); filtered p50 "
          f"{s['filtered_hybrid_p50_ms']:.1f} ms hybrid, {s['filtered_vector_p50_ms']:.1f} ms vector (target <= 20); "
          f"ingest {s['ingest_per_s']:,.0f}/s (target >= 2,000)")
    if "sutram_postgres" in results:
        sp, ps = results["sutram_postgres"], results["postgres_store"]
        print("\nSutram on PostgreSQL vs PostgresStore")
        print(ratio_line("ingest (records/s)", sp["ingest_per_s"], ps["ingest_per_s"], lower_is_better=False))
        print(ratio_line("vector query p50 (ms)", sp["vector_p50_ms"], ps["vector_p50_ms"]))
        print(ratio_line("filtered query p50 (ms)", sp["filtered_vector_p50_ms"], ps["filtered_vector_p50_ms"]))
        print(ratio_line("recall@10", sp["recall_at_10"], ps["recall_at_10"], lower_is_better=False, digits=3))
        print(f"  PostgreSQL vector p50 {sp['vector_p50_ms']:.1f} ms with recall@10 {sp['recall_at_10']:.3f} "
              f"(targets <= 5 ms, >= 0.95); filtered p50 {sp['filtered_vector_p50_ms']:.1f} ms vector, "
              f"{sp['filtered_hybrid_p50_ms']:.1f} ms hybrid (target <= 20); ingest {sp['ingest_per_s']:,.0f}/s "
              f"(target >= 2,000), of which into the HNSW index {sp['indexed_per_s']:,.0f}/s")
    if "sutram_weaviate" in results:
        w = results["sutram_weaviate"]
        print("\nSutram on Weaviate" + (" vs Sutram on PostgreSQL (pgvector)" if "sutram_postgres" in results else ""))
        other = results.get("sutram_postgres", results["sutram_sqlite"])
        for name, key, lower in (("ingest (records/s)", "ingest_per_s", False),
                                 ("vector query p50 (ms)", "vector_p50_ms", True),
                                 ("hybrid query p50 (ms)", "hybrid_p50_ms", True),
                                 ("filtered hybrid p50 (ms)", "filtered_hybrid_p50_ms", True)):
            print(ratio_line(name, w[key], other[key], lower_is_better=lower))
        print(ratio_line("recall@10", w["recall_at_10"], other["recall_at_10"], lower_is_better=False, digits=3))
    results["quality"] = quality(SET_NAMES[1:2] if args.smoke else SET_NAMES, pg, wv)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
