"""Console benchmark: how long the console takes to answer its two heaviest pages.

    python bench/console.py            # SQLite, and PostgreSQL when SUTRAM_BENCH_PG_URL is set
    python bench/console.py --quick    # a small smoke run

A database is filled directly through the trace store with RUNS runs (a root span and two
children each: a node and a model call with tokens and cost) and one run of BIG spans
(nodes, model calls and tools, nested), all in one tenant. Then, in process through
Starlette's test client (the HTTP layer without a socket), the median of 5 requests:

  runs list   GET /            the newest 50 runs, the graph filter's names, and totals over
                               all RUNS runs
  filtered    GET /?status=error&graph=...   the same with filters
  run page    GET /runs/BIG    the tree and the timeline of all BIG spans
  search      GET /?q=P-50000?  runs whose input, output or error holds the text (one of RUNS),
                               and a text none holds
  model       GET /?model=...  runs that called a model (every one does)
  stats       GET /stats?last=7d  the charts and tables over every run (percentiles exact)
  sorted      GET /?sort=slowest, /?sort=tokens  the runs list in another order

Targets: each under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.testclient import TestClient

from bench._pg import drop_schema, fresh_schema
from sutram_adapters.console import create_app
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.traces import SqlTraceStore
from sutram_core.traces.store import SPAN_COLUMNS

TENANT = "bench"


def _span(run: str, span: str, parent: str | None, name: str, kind: str, start: int, end: int,
          **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SPAN_COLUMNS)
    row.update(tenant_id=TENANT, span_id=span, run_id=run, parent_id=parent, name=name, kind=kind,
               status=extra.pop("status", "ok"), start_ns=start, end_ns=end, attributes="{}", **extra)
    return row


def fill(url: str, runs: int, big: int) -> str:
    """Write ``runs`` small runs and one run of ``big`` spans; return the big run's id."""
    db = Database(url)
    store = SqlTraceStore(db)
    now = time.time_ns() - runs * 1_000_000_000
    batch: list[dict[str, Any]] = []
    for i in range(runs):
        run = f"r{i:07d}"
        start = now + i * 1_000_000_000
        status = "error" if i % 50 == 0 else "ok"
        batch += [
            _span(run, run, None, f"graph-{i % 7}", "workflow", start, start + 900_000_000, status=status,
                  thread_id=f"t{i % 1000}",
                  inputs=f'{{"messages": [{{"type": "human", "content": "Where is parcel P-{i}? It was due on day {i % 30}."}}]}}',
                  outputs=f'{{"messages": [{{"type": "ai", "content": "Parcel P-{i} is out for delivery."}}]}}'),
            _span(run, f"{run}n", run, "agent", "node", start + 1_000, start + 800_000_000, step=1),
            _span(run, f"{run}m", f"{run}n", "ChatOpenAI", "llm", start + 2_000, start + 700_000_000,
                  input_tokens=120, output_tokens=40, cost_usd=0.00004, response_model="gpt-4o-mini"),
        ]
        if len(batch) >= 3000:
            store.write_spans(batch)
            batch = []
    big_id = f"big-{uuid.uuid4().hex[:6]}"
    start = time.time_ns()
    batch.append(_span(big_id, big_id, None, "long-agent", "workflow", start, start + big * 2_000_000))
    node = big_id
    for i in range(1, big):
        t = start + i * 2_000_000
        if i % 10 == 1:
            node = f"{big_id}-{i}"
            batch.append(_span(big_id, node, big_id, f"step-{i // 10}", "node", t, t + 19_000_000, step=i // 10))
        elif i % 3 == 0:
            batch.append(_span(big_id, f"{big_id}-{i}", node, "lookup", "tool", t, t + 1_000_000,
                               tool_name="lookup", tool_call_id=f"call_{i}"))
        else:
            batch.append(_span(big_id, f"{big_id}-{i}", node, "ChatOpenAI", "llm", t, t + 1_500_000,
                               input_tokens=300, output_tokens=80, cost_usd=0.0001, response_model="gpt-4o-mini",
                               status="error" if i % 997 == 0 else "ok"))
        if len(batch) >= 3000:
            store.write_spans(batch)
            batch = []
    store.write_spans(batch)
    if db.backend == "postgresql":  # as autovacuum would have by now in a database this size
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE sutram_spans")
    db.close()
    return big_id


def timed(client: TestClient, path: str, repeat: int = 5) -> float:
    client.get(path)  # warm: templates compiled, connections open
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text[:500]
    return statistics.median(times)


def measure(url: str, runs: int, big: int) -> dict[str, Any]:
    started = time.perf_counter()
    big_id = fill(url, runs, big)
    filled = time.perf_counter() - started
    with TestClient(create_app(url), base_url="http://127.0.0.1:8787") as client:  # a Host the console serves
        out = {
            "runs": runs, "big_spans": big, "fill_s": filled,
            "runs_list_s": timed(client, f"/?tenant={TENANT}"),
            "runs_filtered_s": timed(client, f"/?tenant={TENANT}&status=error&graph=graph-3"),
            "run_page_s": timed(client, f"/runs/{big_id}?tenant={TENANT}"),
            # a word of one run's input (scans every root), and the model filter
            "runs_search_s": timed(client, f"/?tenant={TENANT}&q=P-{runs // 2}%3F"),
            "runs_search_miss_s": timed(client, f"/?tenant={TENANT}&q=no-such-parcel"),
            "runs_model_s": timed(client, f"/?tenant={TENANT}&model=gpt-4o-mini"),
            "stats_s": timed(client, f"/stats?tenant={TENANT}&last=7d"),  # charts over every run
            "runs_slowest_s": timed(client, f"/?tenant={TENANT}&sort=slowest"),
            "runs_tokens_s": timed(client, f"/?tenant={TENANT}&sort=tokens"),  # totals of every run, ranked
        }
        assert client.get(f"/?tenant={TENANT}&q=P-{runs // 2}%3F").text.count('class="run-link"') == 1
        page = client.get(f"/runs/{big_id}?tenant={TENANT}").text
        out["run_page_rows"] = page.count('class="span ')
        out["run_page_kib"] = len(page.encode()) / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs, big = (2_000, 500) if args.quick else (100_000, 5_000)
    results: dict[str, Any] = {}
    targets: list[tuple[str, str]] = []
    if args.backend in ("sqlite", "all"):
        targets.append(("sqlite", f"sqlite:///{Path(tempfile.mkdtemp(prefix='sutram-bench-console-')) / 'c.db'}"))
    pg = os.environ.get("SUTRAM_BENCH_PG_URL")
    schema = None
    if args.backend in ("postgresql", "all"):
        if pg:
            pg_url, schema = fresh_schema(pg)
            targets.append(("postgresql", pg_url))
        else:
            print("PostgreSQL skipped: set SUTRAM_BENCH_PG_URL (make bench does)")
    try:
        for name, url in targets:
            got = measure(url, runs, big)
            results[name] = got
            print(f"\n== {name}: {runs:,} runs (3 spans each) + one run of {big:,} spans; filled in {got['fill_s']:.1f} s")
            for label, key in (("runs list, newest 50 + totals over all", "runs_list_s"),
                               ("runs list, status + graph filter", "runs_filtered_s"),
                               (f"run page, {big:,} spans (tree + timeline)", "run_page_s"),
                               ("runs search, a word of one run's input", "runs_search_s"),
                               ("runs search, a text no run holds", "runs_search_miss_s"),
                               ("runs list, model filter", "runs_model_s"),
                               ("stats page, 7 days (every run)", "stats_s"),
                               ("runs list sorted by duration", "runs_slowest_s"),
                               ("runs list sorted by tokens (every run summed)", "runs_tokens_s")):
                verdict = "met" if got[key] < 1 else "MISSED"
                print(f"{label:48} {got[key] * 1e3:9.1f} ms   (target < 1 s: {verdict})")
            print(f"{'run page size':48} {got['run_page_kib']:9.0f} KiB, {got['run_page_rows']} rows")
    finally:
        if schema and pg:
            drop_schema(pg, schema)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
