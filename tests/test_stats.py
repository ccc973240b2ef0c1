"""Dashboard figures (``sutram stats``, the console's stats page) checked against the
spans in the database, on SQLite and PostgreSQL; the folding itself with hypothesis."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from sutram_adapters.cli import main
from sutram_adapters.console import create_app
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.schema import spans
from sutram_core.errors import ConfigurationError
from sutram_core.traces import open_trace_store
from sutram_core.traces.stats import bucket_width, build_stats, parse_span, percentile
from tests.console_agents import seed_agents
from tests.console_seed import seed


@pytest.fixture
def seeded(db_url: str) -> str:
    seed(db_url)
    seed_agents(db_url, tenant="desk")
    return db_url


def _from_the_database(url: str, tenant: str) -> dict[str, Any]:
    db = Database(url)
    c = spans.c
    try:
        with db.engine.connect() as conn:
            roots = conn.execute(sa.select(sa.func.count(), sa.func.sum(sa.case((c.status == "error", 1), else_=0)))
                                 .where(c.tenant_id == tenant, c.parent_id.is_(None))).one()
            llm = conn.execute(sa.select(sa.func.count(), sa.func.sum(c.input_tokens), sa.func.sum(c.output_tokens),
                                         sa.func.sum(c.cost_usd), sa.func.count(c.cost_usd))
                               .where(c.tenant_id == tenant, c.kind == "llm")).one()
    finally:
        db.close()
    return {"runs": roots[0], "errors": roots[1] or 0, "calls": llm[0], "in": llm[1] or 0, "out": llm[2] or 0,
            "cost": llm[3] if llm[4] == llm[0] else None}


@pytest.mark.parametrize("tenant", ["acme", "desk"])
def test_stats_sum_to_what_the_database_holds(seeded: str, tenant: str) -> None:
    want = _from_the_database(seeded, tenant)
    now = time.time_ns()
    with open_trace_store(seeded) as store:
        got = store.stats(tenant, now - parse_span("1h"), now + 1, buckets=12)
    t = got.total
    assert (t.count, t.errors, t.input_tokens, t.output_tokens) == (want["runs"], want["errors"], want["in"], want["out"])
    assert (t.cost_usd is None) == (want["cost"] is None)
    if want["cost"] is not None:
        assert t.cost_usd == pytest.approx(want["cost"])
    assert sum(b.runs for b in got.buckets) == want["runs"] and sum(m.count for m in got.models) == want["calls"]
    assert sum(g.count for g in got.graphs) == want["runs"]
    assert sum(g.input_tokens for g in got.graphs) == want["in"] == sum(m.input_tokens for m in got.models)
    assert t.p50_ms is not None and t.p95_ms is not None and 0 < t.p50_ms <= t.p95_ms


def test_the_stats_page_and_the_cli_show_the_same_totals(seeded: str, capsys: Any) -> None:
    want = _from_the_database(seeded, "desk")
    with TestClient(create_app(seeded), base_url="http://127.0.0.1") as client:
        page = client.get("/stats", params={"tenant": "desk", "last": "1h"}).text
        assert client.get("/stats", params={"last": "2y"}).status_code == 400
    total = page.split('id="stats-total">')[1].split("</p>")[0]
    assert f"{want['runs']} runs" in total and f"tokens {want['in']} in / {want['out']} out" in total
    assert f"{want['in'] + want['out']} tokens" in page.split('id="chart-tokens"')[1]
    assert page.count("<rect ") >= 4 and 'href="/?tenant=desk&amp;graph=support"' in page
    assert main(["stats", "--url", seeded, "--tenant", "desk", "--last", "1h", "--json"]) == 0
    (cli,) = json.loads(capsys.readouterr().out)
    assert (cli["total"]["count"], cli["total"]["input_tokens"]) == (want["runs"], want["in"])
    assert {g["key"] for g in cli["graphs"]} == {"support", "orders"}
    assert main(["stats", "--url", seeded, "--last", "soon"]) == 2
    assert "90m, 24h, 7d" in capsys.readouterr().err


def test_a_window_before_the_runs_is_empty_and_bad_windows_are_refused(seeded: str) -> None:
    with open_trace_store(seeded) as store:
        empty = store.stats("desk", 1, 10**9, buckets=3)
        assert empty.total.count == 0 and empty.models == [] and empty.total.p50_ms is None
        for since, until, n in ((10, 5, 3), (0, 10, 0), (0, 10, 501)):
            with pytest.raises(ConfigurationError):
                store.stats("desk", since, until, buckets=n)


def test_percentiles_by_nearest_rank() -> None:
    assert percentile([], .5) is None
    assert percentile([5.0], .95) == 5.0
    assert (percentile(list(map(float, range(1, 101))), .5), percentile(list(map(float, range(1, 101))), .95)) == (50, 95)


_run = st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 999), st.integers(0, 50), st.sampled_from(["ok", "error"]))


@given(st.lists(_run, max_size=40), st.integers(1, 9))
def test_buckets_groups_and_total_agree(runs: list[tuple[str, int, int, str]], buckets: int) -> None:
    width = bucket_width(0, 1000, buckets)
    roots = [(f"r{i}", name, start // width, dur, status == "error") for i, (name, start, dur, status) in enumerate(runs)]
    calls = [(f"r{i}", "m1" if i % 2 else "m2", start // width, 1, False, 3, 2, None if i == 5 else 0.5)
             for i, (_, start, _, _) in enumerate(runs)]
    got = build_stats("t", 0, 1000, buckets, roots, calls)
    assert sum(g.input_tokens for g in got.graphs) == 3 * len(runs)  # every call's run started in the window
    assert len(got.buckets) == buckets
    assert sum(b.runs for b in got.buckets) == got.total.count == len(runs) == sum(g.count for g in got.graphs)
    assert sum(b.errors for b in got.buckets) == got.total.errors == sum(s == "error" for *_, s in runs)
    assert sum(b.input_tokens for b in got.buckets) == got.total.input_tokens == 3 * len(runs)
    assert (got.total.cost_usd is None) == (len(runs) > 5)  # one unpriced call makes the sum unknown
    for b in got.buckets:
        assert (b.p50_ms is None) == (b.runs == 0) and (b.p50_ms or 0) <= (b.p95_ms or 0)


def test_ranking_by_tokens_or_cost_lists_the_runs_that_called_a_model(db_url: str) -> None:
    from sutram_core.traces.store import SPAN_COLUMNS

    def row(run: str, span: str, parent: str | None, kind: str, start: int, **extra: Any) -> dict[str, Any]:
        r: dict[str, Any] = dict.fromkeys(SPAN_COLUMNS)
        r.update(tenant_id="t", span_id=span, run_id=run, parent_id=parent, name=run, kind=kind, status="ok",
                 start_ns=start, end_ns=start + 10, attributes="{}", **extra)
        return r

    with open_trace_store(db_url) as store:
        store.write_spans([
            row("cheap", "cheap", None, "chain", 1), row("cheap", "c1", "cheap", "llm", 2, input_tokens=5,
                                                         output_tokens=1, cost_usd=0.01),
            row("dear", "dear", None, "chain", 3), row("dear", "d1", "dear", "llm", 4, input_tokens=50,
                                                       output_tokens=9, cost_usd=0.2),
            row("no-model", "no-model", None, "chain", 5), row("no-model", "n1", "no-model", "tool", 6),
        ])
        assert [r.run_id for r in store.runs("t", sort="tokens")] == ["dear", "cheap"]
        assert [r.run_id for r in store.runs("t", sort="cost")] == ["dear", "cheap"]
        assert [r.run_id for r in store.runs("t", sort="tokens", name="cheap")] == ["cheap"]
        assert [r.run_id for r in store.runs("t")] == ["no-model", "dear", "cheap"]
        assert [r.run_id for r in store.runs("t", model="gpt-x")] == []
