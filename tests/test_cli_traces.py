"""``sutram runs``, ``sutram trace`` and ``sutram audit verify`` on a real database."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from sutram_adapters.cli import main
from sutram_adapters.langchain import SutramCallbackHandler
from sutram_core.backends.sql.database import Database
from sutram_core.backends.sql.schema import spans
from sutram_core.traces import Tracer
from tests.fake_models import EchoChatModel
from tests.tracing_graphs import fan_out_graph


@pytest.fixture
def traced(db_url: str) -> str:
    """Two runs of tenant acme: a fan-out graph run and a single model call."""
    import asyncio

    with Tracer.from_url(db_url) as tracer:
        handler = SutramCallbackHandler(tracer=tracer, tenant="acme")
        asyncio.run(fan_out_graph(EchoChatModel()).compile().ainvoke(
            {"topics": ["a"], "notes": []}, {"callbacks": [handler], "metadata": {"thread_id": "t-7"}}))
        EchoChatModel().invoke("hi", {"callbacks": [handler]})
    return db_url


def test_runs_json_lists_runs_with_totals(traced: str, capsys: Any) -> None:
    assert main(["runs", "--url", traced, "--tenant", "acme", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in runs] == ["EchoChatModel", "LangGraph"]
    graph = runs[1]
    assert (graph["thread_id"], graph["status"], graph["spans"]) == ("t-7", "ok", 12)
    assert graph["input_tokens"] > 0 and graph["cost_usd"] > 0 and graph["duration_ms"] > 0
    assert main(["runs", "--url", traced, "--tenant", "acme", "--thread", "t-7", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1


def test_runs_search_and_model_filters(traced: str, capsys: Any) -> None:
    assert main(["runs", "--url", traced, "--tenant", "acme", "--search", "HI", "--json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)
    assert found["name"] == "EchoChatModel" and found["input_preview"] == "hi"
    assert main(["runs", "--url", traced, "--search", "no such words", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    from sutram_core.traces import open_trace_store

    with open_trace_store(traced) as store:
        (model,) = store.run_models("acme")
    assert main(["runs", "--url", traced, "--tenant", "acme", "--model", model, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2  # both runs called it
    assert main(["runs", "--url", traced, "--tenant", "acme", "--model", "nobody's-model", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    for sort, first in (("tokens", "LangGraph"), ("oldest", "LangGraph"), ("newest", "EchoChatModel")):
        assert main(["runs", "--url", traced, "--sort", sort, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["name"] == first, sort


def test_runs_table_and_trace_tree_render(traced: str, capsys: Any) -> None:
    assert main(["runs", "--url", traced, "--tenant", "acme"]) == 0
    assert "LangGraph" in capsys.readouterr().out
    run_id = Tracer.from_url(traced).store.runs("acme")[1].run_id
    assert main(["trace", run_id, "--url", traced, "--tenant", "acme"]) == 0
    out = capsys.readouterr().out
    assert "research" in out and "tokens" in out and "12 spans" in out


def test_trace_json_is_a_list_of_spans_with_parents_and_attributes(traced: str, capsys: Any) -> None:
    run_id = Tracer.from_url(traced).store.runs("acme")[1].run_id
    assert main(["trace", run_id, "--url", traced, "--tenant", "acme", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 12
    ids = {s["span_id"] for s in out}
    assert all({"span_id", "parent_id", "name", "attributes"} <= s.keys() for s in out)
    assert [s["name"] for s in out if s["parent_id"] is None] == ["LangGraph"]
    assert all(s["parent_id"] in ids for s in out if s["parent_id"] is not None)
    models = [s for s in out if s["attributes"].get("gen_ai.operation.name") == "chat"]
    assert len(models) == 5 and all(m["attributes"]["gen_ai.usage.input_tokens"] > 0 for m in models)


def test_trace_of_an_unknown_run_says_how_to_find_one(traced: str, capsys: Any) -> None:
    assert main(["trace", "nope", "--url", traced, "--tenant", "acme"]) == 1
    assert "sutram runs --tenant acme" in capsys.readouterr().err


def test_audit_verify_passes_then_names_the_edited_row(traced: str, capsys: Any) -> None:
    assert main(["audit", "verify", "--url", traced]) == 0
    out = capsys.readouterr().out
    assert "tenant acme: ok (" in out and "entries, 13 records;" in out
    db = Database(traced)
    with db.engine.begin() as conn:
        victim = conn.execute(sa.select(spans.c.span_id).where(spans.c.kind == "llm").limit(1)).scalar_one()
        conn.execute(sa.update(spans).where(spans.c.span_id == victim).values(cost_usd=0.0))
    db.close()
    assert main(["audit", "verify", "--url", traced, "--tenant", "acme"]) == 1
    out = capsys.readouterr().out
    assert f"span {victim} was edited" in out


def test_an_unpriced_model_is_unknown_cost_everywhere_never_zero(db_url: str, capsys: Any) -> None:
    import json as _json

    from starlette.testclient import TestClient

    from sutram_adapters.console import create_app
    from sutram_adapters.langchain import SutramCallbackHandler
    from sutram_core.traces import Tracer
    from tests.fake_models import EchoChatModel

    with Tracer.from_url(db_url) as tracer:
        handler = SutramCallbackHandler(tracer=tracer)
        EchoChatModel(model_name="in-house-llm").invoke("hi", {"callbacks": [handler], "run_name": "unpriced"})
        EchoChatModel().invoke("hi", {"callbacks": [handler], "run_name": "priced"})
        tracer.flush()
        runs = {r.name: r for r in tracer.store.runs("default")}
        (totals,) = tracer.store.totals("default", "tenant")
        models = {t.key: t.cost_usd for t in tracer.store.totals("default", "model")}
    assert runs["unpriced"].cost_usd is None and runs["priced"].cost_usd and runs["priced"].cost_usd > 0
    assert totals.cost_usd is None and models["in-house-llm-2024-07-18"] is None
    assert main(["runs", "--url", db_url, "--json"]) == 0
    listed = {r["name"]: r for r in _json.loads(capsys.readouterr().out)}
    assert listed["unpriced"]["cost_usd"] is None and listed["priced"]["cost_usd"] > 0
    assert main(["runs", "--url", db_url]) == 0
    assert "unknown" in capsys.readouterr().out
    assert main(["trace", runs["unpriced"].run_id, "--url", db_url]) == 0
    out = capsys.readouterr().out
    assert "unknown" in out and "$0.000000" not in out
    client = TestClient(create_app(db_url), base_url="http://127.0.0.1:8787")
    page = client.get("/?tenant=default").text
    assert "unknown" in page and "$0.000000" not in page
    run_page = client.get(f"/runs/{runs['unpriced'].run_id}?tenant=default").text
    assert "unknown" in run_page and "$0.000000" not in run_page
