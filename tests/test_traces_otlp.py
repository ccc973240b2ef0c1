"""OTLP export: a real OTLP/HTTP exchange with a local receiver that decodes the protobuf."""

from __future__ import annotations

from typing import Any

import pytest

from sutram_adapters.cli import main
from sutram_adapters.langchain import SutramCallbackHandler
from sutram_core.errors import ConfigurationError
from sutram_core.traces import OtlpExporter, Tracer
from sutram_core.traces.otlp import span_id_of, trace_id_of
from tests.fake_models import EchoChatModel
from tests.otlp_receiver import OtlpReceiver
from tests.tracing_graphs import fan_out_graph


def _by_name(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        out.setdefault(s["name"], []).append(s)
    return out


async def test_live_export_sends_names_parents_and_genai_attributes(db_url: str) -> None:
    with OtlpReceiver() as receiver:
        tracer = Tracer.from_url(db_url, exporters=[OtlpExporter(receiver.url)])
        app = fan_out_graph(EchoChatModel()).compile()
        await app.ainvoke({"topics": ["a", "b"], "notes": []},
                          {"callbacks": [SutramCallbackHandler(tracer=tracer, tenant="acme")],
                           "metadata": {"thread_id": "conv-1"}})
        tracer.close()
    (run,) = Tracer.from_url(db_url).store.runs("acme")
    spans = receiver.spans
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    assert len(spans) == run.spans == 14
    assert {s["trace_id"] for s in spans} == {f"{trace_id_of('acme', run.run_id):032x}"}
    names = _by_name(spans)
    (root,) = names["invoke_workflow LangGraph"]
    assert root["parent_id"] is None and root["span_id"] == f"{span_id_of('acme', run.run_id):016x}"
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_workflow"
    assert root["attributes"]["gen_ai.conversation.id"] == "conv-1"
    assert root["resource"]["service.name"] == "sutram" and root["scope"] == "sutram"
    ids = {s["span_id"]: s for s in spans}
    models = names["chat gpt-4o-mini"]
    assert len(models) == 6
    for m in models:
        parent = ids[m["parent_id"]]
        assert parent["attributes"]["sutram.span.kind"] == "node"
        assert ids[parent["parent_id"]] is root
        a = m["attributes"]
        assert a["gen_ai.provider.name"] == "echochatmodel"  # LangChain's ls_provider
        assert a["gen_ai.request.model"] == "gpt-4o-mini"
        assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["sutram.cost.usd"] > 0 and a["sutram.tenant.id"] == "acme"
    assert all(s["end"] >= s["start"] > 0 for s in spans)


def test_cli_exports_stored_runs(db_url: str, capsys: Any) -> None:
    with Tracer.from_url(db_url) as tracer:
        EchoChatModel().invoke("hi", {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    with OtlpReceiver() as receiver:
        assert main(["export", "--otlp", receiver.url, "--url", db_url,
                     "--header", "Authorization=Basic cGs6c2s=", "--header", "x-tenant=acme"]) == 0
    assert [s["name"] for s in receiver.spans] == ["chat gpt-4o-mini"]
    assert receiver.headers[0]["authorization"] == "Basic cGs6c2s=" and receiver.headers[0]["x-tenant"] == "acme"
    assert "exported 1 span" in capsys.readouterr().out
    assert main(["export", "--otlp", "http://127.0.0.1:9", "--url", db_url, "--header", "no-equals"]) == 2


def test_an_unreachable_collector_is_counted_not_raised(db_url: str) -> None:
    exporter = OtlpExporter("http://127.0.0.1:9", timeout=0.5)
    with Tracer.from_url(db_url, exporters=[exporter]) as tracer:
        EchoChatModel().invoke("hi", {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
        tracer.flush()
        assert exporter.failed == 1 and exporter.exported == 0
        assert len(tracer.store.runs("default")) == 1  # the database write is unaffected


def _exported_chat(db_url: str) -> dict[str, Any]:
    """One LLM call with a system and a user message, exported live; its span's attributes."""
    from langchain_core.messages import HumanMessage, SystemMessage

    with OtlpReceiver() as receiver:
        with Tracer.from_url(db_url, exporters=[OtlpExporter(receiver.url)]) as tracer:
            EchoChatModel().invoke([SystemMessage("Be brief."), HumanMessage("where is order A-1042?")],
                                   {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    (span,) = receiver.spans
    return span["attributes"]  # type: ignore[no-any-return]


def test_a_chat_span_carries_its_messages_under_the_genai_names(db_url: str) -> None:
    import json

    attributes = _exported_chat(db_url)
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "where is order A-1042?"}]}]
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "echo: where is order A-1042?"}],
         "finish_reason": "stop"}]


def test_trace_content_off_keeps_the_messages_out_of_the_export(db_url: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("SUTRAM_TRACE_CONTENT", "false")
    attributes = _exported_chat(db_url)
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.usage.input_tokens"] > 0
    assert not {"gen_ai.input.messages", "gen_ai.output.messages", "sutram.input", "sutram.output"} & set(attributes)
    assert "A-1042" not in repr(attributes)


def test_export_to_nothing_listening_fails_fast_with_one_line(db_url: str, capsys: Any) -> None:
    import time

    with Tracer.from_url(db_url) as tracer:
        EchoChatModel().invoke("hi", {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    started = time.monotonic()
    assert main(["export", "--otlp", "http://127.0.0.1:9/", "--url", db_url]) == 1
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nothing sent: cannot connect to 127.0.0.1:9")


def test_an_endpoint_without_a_scheme_is_refused(db_url: str, capsys: Any) -> None:
    with Tracer.from_url(db_url) as tracer:
        EchoChatModel().invoke("hi", {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
    assert main(["export", "--otlp", "localhost:4318", "--url", db_url]) == 2
    assert "e.g. http://localhost:4318" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="not an http"):
        OtlpExporter("ftp://collector:4318")


def test_a_collector_that_is_down_is_not_waited_for_on_every_batch(db_url: str) -> None:
    import time

    exporter = OtlpExporter("http://127.0.0.1:9", retry_after=60)
    with Tracer.from_url(db_url, exporters=[exporter]) as tracer:
        started = time.monotonic()
        for i in range(5):
            EchoChatModel().invoke(f"hi {i}", {"callbacks": [SutramCallbackHandler(tracer=tracer)]})
            tracer.flush()
        assert time.monotonic() - started < 5
        assert exporter.failed == 5 and exporter.exported == 0
        assert len(tracer.store.runs("default")) == 5
