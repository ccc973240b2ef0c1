"""The trace store contract, run on every backend: rows, queries, totals, tenants, audit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.schema import audit_log, spans
from sutram_core.errors import ConfigurationError
from sutram_core.traces import Span, SpanKind, Tracer, span_tree


@pytest.fixture
def tracer(db_url: str) -> Iterator[Tracer]:
    t = Tracer.from_url(db_url)
    yield t
    t.close()


def _run(tracer: Tracer, run: str, *, tenant: str = "acme", thread: str = "t1", model: str = "gpt-4o",
         tokens: tuple[int, int] = (100, 10), fail: bool = False, start: int = 0) -> None:
    root = Span(run, run, None, "graph", SpanKind.WORKFLOW, tenant, operation="invoke_workflow",
                thread_id=thread, start_ns=1_000_000 + start)
    step = Span(f"{run}-n", run, run, "agent", SpanKind.NODE, tenant, thread_id=thread, start_ns=2_000_000 + start)
    call = Span(f"{run}-l", run, f"{run}-n", "chat", SpanKind.LLM, tenant, operation="chat", thread_id=thread,
                start_ns=3_000_000 + start)
    call.request_model, (call.input_tokens, call.output_tokens) = model, tokens
    tracer.start(root)
    for s in (call, step):
        s.finish({"ok": True}, ValueError("boom") if fail and s is step else None)
        tracer.end(s)
    root.finish({"done": 1})
    tracer.end(root)


def test_a_run_reads_back_as_one_tree(tracer: Tracer) -> None:
    _run(tracer, "r1")
    tracer.flush()
    tree = span_tree(tracer.store.run_spans("acme", "r1"))
    assert [(s.name, [c.name for c in s.children]) for s in tree] == [("graph", ["agent"])]
    call = tree[0].children[0].children[0]
    assert (call.kind, call.operation, call.input_tokens, call.output_tokens) == ("llm", "chat", 100, 10)
    assert call.cost_usd == pytest.approx((100 * 2.5 + 10 * 10.0) / 1e6)
    assert call.outputs == '{"ok":true}'
    assert call.otel_attributes()["gen_ai.usage.input_tokens"] == 100
    assert call.otel_attributes()["gen_ai.conversation.id"] == "t1"


def test_a_root_is_listed_as_running_until_it_ends(tracer: Tracer) -> None:
    root = Span("r1", "r1", None, "graph", SpanKind.WORKFLOW, "acme")
    tracer.start(root)
    tracer.flush()
    assert [(r.run_id, r.status, r.end_ns) for r in tracer.store.runs("acme")] == [("r1", "running", None)]
    root.finish()
    tracer.end(root)
    tracer.flush()
    assert [(r.status, r.end_ns is not None) for r in tracer.store.runs("acme")] == [("ok", True)]


def test_runs_are_listed_newest_first_and_filtered(tracer: Tracer) -> None:
    for i in range(5):
        _run(tracer, f"r{i}", thread="t-even" if i % 2 == 0 else "t-odd", fail=i == 3, start=i * 10)
    tracer.flush()
    store = tracer.store
    assert [r.run_id for r in store.runs("acme")] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.run_id for r in store.runs("acme", thread_id="t-odd")] == ["r3", "r1"]
    assert [r.run_id for r in store.runs("acme", limit=2)] == ["r4", "r3"]
    r3 = store.runs("acme", thread_id="t-odd")[0]
    assert (r3.spans, r3.input_tokens, r3.output_tokens, r3.errors) == (3, 100, 10, 1)
    before = store.runs("acme")[1].start_ns
    assert [r.run_id for r in store.runs("acme", before_ns=before)] == ["r2", "r1", "r0"]


def test_totals_per_run_thread_tenant_and_model(tracer: Tracer) -> None:
    _run(tracer, "r1", thread="a", model="gpt-4o")
    _run(tracer, "r2", thread="a", model="gpt-4o-mini", tokens=(1000, 100))
    _run(tracer, "r3", thread="b", model="mystery-model", fail=True)
    tracer.flush()
    store = tracer.store
    by_model = {t.key: t for t in store.totals("acme", "model")}
    assert by_model["gpt-4o"].cost_usd == pytest.approx(350 / 1e6)
    assert by_model["gpt-4o-mini"].cost_usd == pytest.approx((1000 * 0.15 + 100 * 0.6) / 1e6)
    assert by_model["mystery-model"].cost_usd is None  # unknown models get no guessed price, and no $0
    assert next(t.key for t in store.totals("acme", "model")) == "mystery-model"  # unknown first
    by_thread = {t.key: t for t in store.totals("acme", "thread")}
    assert (by_thread["a"].runs, by_thread["a"].input_tokens, by_thread["b"].errors) == (2, 1100, 1)
    (tenant,) = store.totals("acme", "tenant")
    assert (tenant.runs, tenant.spans, tenant.llm_calls, tenant.input_tokens) == (3, 9, 3, 1200)
    assert tenant.latency_ms > 0 and tenant.cost_usd is None  # one of its calls has no known price
    assert {t.key: t.cost_usd for t in store.totals("acme", "thread")}["a"] == pytest.approx(
        (350 + 1000 * 0.15 + 100 * 0.6) / 1e6)
    assert [t.key for t in store.totals("acme", "run", thread_id="b")] == ["r3"]
    with pytest.raises(ConfigurationError, match="use one of"):
        store.totals("acme", "planet")


def test_tenants_never_see_each_others_runs(tracer: Tracer) -> None:
    _run(tracer, "same-id", tenant="acme")
    _run(tracer, "same-id", tenant="globex", tokens=(7, 7))
    tracer.flush()
    assert [r.input_tokens for r in tracer.store.runs("acme")] == [100]
    assert [r.input_tokens for r in tracer.store.runs("globex")] == [7]
    assert {s.tenant_id for s in tracer.store.run_spans("globex", "same-id")} == {"globex"}
    assert tracer.store.runs("initech") == []


def test_the_audit_chain_of_an_untouched_tenant_verifies(tracer: Tracer) -> None:
    for i in range(3):
        _run(tracer, f"r{i}")
        tracer.flush()  # one audit entry per written batch
    _run(tracer, "g", tenant="globex")
    tracer.flush()
    report = tracer.store.verify_audit("acme")
    assert report.ok and (report.entries, report.records) == (3, 9)
    assert tracer.store.audit_tenants() == ["acme", "globex"]


def _tamper(db_url: str, statement: Any) -> None:
    db = Database(db_url)
    with db.engine.begin() as conn:
        conn.execute(statement)
    db.close()


@pytest.mark.parametrize("tampering, kind", [
    (sa.update(spans).where(spans.c.span_id == "r1-l").values(input_tokens=1), "edited_record"),
    (sa.delete(spans).where(spans.c.span_id == "r1-n"), "deleted_record"),
    (sa.delete(audit_log).where(audit_log.c.seq == 1), "missing_entry"),
    (sa.update(audit_log).where(audit_log.c.seq == 2).values(records='[["r2-l", "00"]]'), "edited_entry"),
    (sa.insert(spans).values(tenant_id="acme", span_id="forged", run_id="r1", parent_id="r1", name="x", kind="chain",
                             status="ok", start_ns=1, attributes="{}"), "unlogged_record"),
])
def test_audit_verify_names_an_edited_or_deleted_row(tracer: Tracer, db_url: str, tampering: Any, kind: str) -> None:
    _run(tracer, "r1")
    tracer.flush()
    _run(tracer, "r2")
    tracer.flush()
    _tamper(db_url, tampering)
    report = tracer.store.verify_audit("acme")
    assert not report.ok
    assert kind in {p.kind for p in report.problems}, report.problems
    assert all(p.what for p in report.problems)
    assert tracer.store.verify_audit("globex").ok  # another tenant's chain is not involved


def test_a_batch_with_several_tenants_extends_each_chain(tracer: Tracer) -> None:
    for i in range(4):
        _run(tracer, f"r{i}", tenant="acme" if i % 2 else "globex")
    tracer.flush()
    for tenant in ("acme", "globex"):
        report = tracer.store.verify_audit(tenant)
        assert report.ok and (report.entries, report.records) == (1, 6)


def test_two_writers_on_one_tenant_keep_one_unbroken_chain(db_url: str) -> None:
    import threading

    tracers = [Tracer.from_url(db_url) for _ in range(2)]  # two pools, as two processes would have

    def write(t: Tracer, w: int) -> None:
        for i in range(15):
            _run(t, f"w{w}-r{i}")
            t.flush()  # one audit entry per flush: 30 appends race for the chain's tail

    threads = [threading.Thread(target=write, args=(t, w)) for w, t in enumerate(tracers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    report = tracers[0].store.verify_audit("acme")
    for t in tracers:
        t.close()
    assert report.ok, report.problems
    assert (report.entries, report.records) == (30, 90)
