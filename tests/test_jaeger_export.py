"""OTLP export into a real Jaeger, read back through Jaeger's query API.

`make test` builds Jaeger from its Go module once (``integrations/jaeger/testserver.py``),
starts it with in-memory storage and exports ``SUTRAM_JAEGER="OTLP_URL QUERY_URL"``. Each
test exports runs (live through ``Tracer(exporters=[OtlpExporter])`` or afterwards through
``sutram export --otlp``), reads every trace back from ``/api/v3/traces/{id}`` (OTLP JSON)
and compares it span by span with what Sutram stored: name, trace id, span id, parent,
start and end, status and error, and every attribute Sutram sends (the GenAI ones
included). One test runs its own Jaeger to stop it in the middle of a live export.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from sutram_adapters.cli import main
from sutram_adapters.langchain import SutramCallbackHandler
from sutram_adapters.llama_index import instrument
from sutram_core.traces import OtlpExporter, StoredSpan, Tracer
from sutram_core.traces.otlp import otel_span_name, span_id_of, trace_id_of
from tests.fake_llama import UsageFunctionCallingLLM
from tests.fake_models import EchoChatModel
from tests.tracing_graphs import fan_out_graph

JAEGER = os.environ.get("SUTRAM_JAEGER", "").split()
pytestmark = pytest.mark.skipif(
    len(JAEGER) != 2, reason="SUTRAM_JAEGER is not set: `make test` builds Jaeger from its Go module and starts it "
    "(integrations/jaeger/testserver.py); without a Go toolchain these tests skip")
OTLP, QUERY = JAEGER if len(JAEGER) == 2 else ("", "")
TENANT = "acme"


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _value(v: dict[str, Any]) -> Any:
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    return v.get("stringValue")


def jaeger_trace(query: str, trace_id: int, expect: int, *, wait: float = 15.0) -> list[dict[str, Any]]:
    """The spans Jaeger holds for ``trace_id`` once it holds ``expect`` of them (or after ``wait``)."""
    spans: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait
    while True:
        found = _get(f"{query}/api/v3/traces/{trace_id:032x}")
        spans = []
        for rs in (found or {}).get("result", {}).get("resourceSpans", []):
            resource = {a["key"]: _value(a["value"]) for a in rs.get("resource", {}).get("attributes", [])}
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    spans.append({**s, "resource": resource, "scope": ss.get("scope", {}).get("name"),
                                  "attributes": {a["key"]: _value(a["value"]) for a in s.get("attributes", [])}})
        if len(spans) >= expect or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def assert_in_jaeger(query: str, stored: list[StoredSpan]) -> list[dict[str, Any]]:
    """Every stored span is in Jaeger exactly once, the same in every field Sutram sends."""
    assert stored
    tenant, run_id = stored[0].tenant_id, stored[0].run_id
    trace_id = trace_id_of(tenant, run_id)
    got = jaeger_trace(query, trace_id, len(stored))
    assert len(got) == len(stored), f"Jaeger holds {len(got)} spans of trace {trace_id:032x}, Sutram {len(stored)}"
    by_id = {s["spanId"]: s for s in got}
    assert len(by_id) == len(got), "a span id appears twice in Jaeger"
    for span in stored:
        j = by_id[f"{span_id_of(tenant, span.span_id):016x}"]
        assert j["traceId"] == f"{trace_id:032x}"
        assert j["name"] == otel_span_name(span)
        parent = "" if span.parent_id is None else f"{span_id_of(tenant, span.parent_id):016x}"
        assert j.get("parentSpanId", "") == parent
        assert (int(j["startTimeUnixNano"]), int(j["endTimeUnixNano"])) == (span.start_ns, span.end_ns)
        status = j.get("status", {})
        if span.status == "error":
            assert status.get("code") in (2, "STATUS_CODE_ERROR")
            assert status.get("message") == (span.error_message or span.error_type)
        else:
            assert status.get("code") in (1, "STATUS_CODE_OK")
        for key, value in span.otel_attributes().items():
            assert j["attributes"].get(key) == (pytest.approx(value) if isinstance(value, float) else value), key
        assert j["resource"]["service.name"] == "sutram" and j["scope"] == "sutram"
    return got


def _stored(tracer_or_url: Tracer | str, run_id: str) -> list[StoredSpan]:
    tracer = tracer_or_url if isinstance(tracer_or_url, Tracer) else Tracer.from_url(tracer_or_url)
    try:
        return [s for s in tracer.store.run_spans(TENANT, run_id) if s.status != "running"]
    finally:
        if tracer is not tracer_or_url:
            tracer.close()


async def _fan_out_runs(tracer: Tracer) -> None:
    """A fan-out run that completes and one whose first model call fails."""
    handler = SutramCallbackHandler(tracer=tracer, tenant=TENANT)
    await fan_out_graph(EchoChatModel()).compile().ainvoke(
        {"topics": ["a", "b"], "notes": []}, {"callbacks": [handler], "metadata": {"thread_id": "conv-1"}})
    with pytest.raises(ConnectionError):
        await fan_out_graph(EchoChatModel(fail_times=1)).compile().ainvoke(
            {"topics": ["c"], "notes": []}, {"callbacks": [handler], "metadata": {"thread_id": "conv-2"}})


def lookup_order(order_id: str = "A-1042") -> str:
    """Look up an order by id."""
    return f"order {order_id}: packed"


async def _agent_run(tracer: Tracer) -> None:
    inst = instrument(tracer=tracer, tenant=TENANT)
    try:
        agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup_order)], llm=UsageFunctionCallingLLM())
        assert str(await agent.run("where is my order?")) == "Tool calls complete."
    finally:
        inst.uninstrument()


async def test_live_export_of_a_fan_out_run_and_an_agent_run_reads_back_whole(db_url: str) -> None:
    tracer = Tracer.from_url(db_url, exporters=[OtlpExporter(OTLP)])
    await _fan_out_runs(tracer)
    await _agent_run(tracer)
    tracer.close()
    runs = Tracer.from_url(db_url).store.runs(TENANT)
    assert sorted(r.status for r in runs) == ["error", "ok", "ok"]
    for run in runs:
        got = assert_in_jaeger(QUERY, _stored(db_url, run.run_id))
        ops = {s["attributes"].get("gen_ai.operation.name") for s in got}
        assert "chat" in ops
        if run.status == "error":
            errors = [s for s in got if s.get("status", {}).get("code") in (2, "STATUS_CODE_ERROR")]
            assert len(errors) >= 2 and all("upstream connection reset" in s["status"]["message"] for s in errors)
        models = [s for s in got if s["attributes"].get("gen_ai.operation.name") == "chat"
                  and "gen_ai.usage.input_tokens" in s["attributes"]]
        assert all(m["attributes"]["gen_ai.usage.input_tokens"] > 0 and m["attributes"]["gen_ai.request.model"]
                   == "gpt-4o-mini" for m in models)
    agent_run = next(r for r in runs if r.name == "Agent")
    tools = [s for s in jaeger_trace(QUERY, trace_id_of(TENANT, agent_run.run_id), agent_run.spans)
             if s["name"] == "execute_tool lookup_order"]
    assert len(tools) == 1 and tools[0]["attributes"]["gen_ai.tool.call.id"].startswith("mock-tool-call-")


async def test_export_afterwards_twice_and_after_a_live_export_creates_no_duplicates(db_url: str) -> None:
    with Tracer.from_url(db_url) as tracer:  # no exporter: nothing reaches Jaeger while the runs happen
        await _fan_out_runs(tracer)
        await _agent_run(tracer)
    runs = Tracer.from_url(db_url).store.runs(TENANT)
    assert all(_get(f"{QUERY}/api/v3/traces/{trace_id_of(TENANT, r.run_id):032x}") is None for r in runs)
    for _ in range(2):
        assert main(["export", "--otlp", OTLP, "--url", db_url, "--tenant", TENANT]) == 0
        for run in runs:
            assert_in_jaeger(QUERY, _stored(db_url, run.run_id))
    # a run exported live, then again afterwards: the same ids, one copy
    with Tracer.from_url(db_url, exporters=[OtlpExporter(OTLP)]) as tracer:
        EchoChatModel().invoke("hi", {"callbacks": [SutramCallbackHandler(tracer=tracer, tenant=TENANT)]})
    assert main(["export", "--otlp", OTLP, "--url", db_url, "--tenant", TENANT]) == 0
    for run in Tracer.from_url(db_url).store.runs(TENANT):
        assert_in_jaeger(QUERY, _stored(db_url, run.run_id))


def _testserver() -> Any:
    """integrations/jaeger/testserver.py, under a name of its own (PostgreSQL's and Weaviate's
    test servers are modules named testserver too)."""
    import importlib.util

    name = "jaeger_testserver"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parent.parent / "integrations" / "jaeger" / "testserver.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def own_jaeger(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A Jaeger of this test's own, to stop and start again."""
    state = tmp_path / "jaeger"
    urls = _testserver().start(state).split()
    if len(urls) != 2:
        pytest.skip("a second Jaeger could not start")
    try:
        yield state, urls[0], urls[1]
    finally:
        _testserver().goserver.stop(state, grace=0.5)


def test_jaeger_down_during_a_live_export_loses_nothing_sutram_stores(
        db_url: str, own_jaeger: tuple[Path, str, str]) -> None:
    server = _testserver()
    state, otlp, query = own_jaeger
    exporter = OtlpExporter(otlp, retry_after=0.5, timeout=2.0)
    with Tracer.from_url(db_url, exporters=[exporter]) as tracer:
        config: Any = {"callbacks": [SutramCallbackHandler(tracer=tracer, tenant=TENANT)]}
        EchoChatModel().invoke("before", config)
        tracer.flush()
        assert exporter.exported == 1
        server.goserver.halt(state, grace=0)  # Jaeger dies between two runs
        started = time.monotonic()
        for i in range(3):
            EchoChatModel().invoke(f"while down {i}", config)
            tracer.flush()
        assert time.monotonic() - started < 10  # a batch is not waited on for the SDK's whole timeout
        assert exporter.failed == 3
    runs = Tracer.from_url(db_url).store.runs(TENANT)
    assert len(runs) == 4 and all(r.status == "ok" and r.spans == 1 for r in runs)
    # Jaeger comes back on the same ports (empty: in-memory storage); `sutram export` sends what it lacks
    assert server.start(state).split() == [otlp, query]
    assert main(["export", "--otlp", otlp, "--url", db_url, "--tenant", TENANT]) == 0
    for run in runs:
        assert_in_jaeger(query, _stored(db_url, run.run_id))
