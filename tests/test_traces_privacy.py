"""What is stored of span content: the content switch, the hook, the masker, the cap; prices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sutram_core.errors import ConfigurationError
from sutram_core.traces import PriceTable, Redactor, Span, SpanKind, Tracer, mask_secrets


def _stored(db_url: str, **options: object) -> tuple[str | None, str | None, str | None]:
    with Tracer.from_url(db_url, **options) as tracer:  # type: ignore[arg-type]
        span = Span("s", "s", None, "chat", SpanKind.LLM, "acme", inputs={"prompt": "mail ann@example.com"})
        span.finish(error=RuntimeError("key sk-proj-AAAAAAAAAAAAAAAAAAAAAAAA rejected"))
        tracer.end(span)
        tracer.flush()
        (row,) = tracer.store.run_spans("acme", "s")
        return row.inputs, row.outputs, row.error_message


def test_the_masker_hides_api_keys_tokens_and_emails() -> None:
    text = ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123 AKIAABCDEFGHIJKLMNOP Bearer abcdefghijklmnopqrstu "
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789 lsv2_pt_abcdefghijklmnopqrstuvwxyz mail: a.b+c@mail.example.org")
    masked = mask_secrets(text)
    assert masked.count("[REDACTED:api_key]") == 4
    assert "[REDACTED:bearer]" in masked and "[REDACTED:email]" in masked
    assert "abcdefghijklmnop" not in masked and "example.org" not in masked
    assert mask_secrets("plain words, no secrets @ all") == "plain words, no secrets @ all"


def test_content_is_masked_by_default(db_url: str) -> None:
    inputs, outputs, error = _stored(db_url)
    assert inputs == '{"prompt":"mail [REDACTED:email]"}'
    assert outputs is None  # an error span keeps no outputs
    assert error == "key [REDACTED:api_key] rejected"


def test_trace_content_false_keeps_metadata_only(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_TRACE_CONTENT", "false")
    assert _stored(db_url) == (None, None, None)


def test_the_redaction_hook_runs_before_anything_is_stored(db_url: str) -> None:
    def hook(value: object) -> object:
        return "[hidden by policy]"

    inputs, _, error = _stored(db_url, redact=hook)
    assert inputs == '"[hidden by policy]"' and error == "[hidden by policy]"


def test_long_content_is_cut_and_marked() -> None:
    text = Redactor(max_chars=100).text({"x": "y" * 1000})
    assert text is not None and len(text) < 200
    assert json.loads(text)["omitted_chars"] > 900


def test_bad_trace_content_value_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_TRACE_CONTENT", "maybe")
    with pytest.raises(ConfigurationError, match="true or false"):
        Redactor()


def test_prices_match_dated_and_prefixed_model_names() -> None:
    prices = PriceTable.default()
    assert prices.version.startswith("2026-")
    assert prices.price("gpt-4o-2024-08-06") == prices.price("gpt-4o")
    assert prices.price("gpt-4o-mini-2024-07-18") == prices.price("gpt-4o-mini") != prices.price("gpt-4o")
    assert prices.price("openai/gpt-4.1") == prices.price("gpt-4.1")
    assert prices.price("llama-3-local") is None
    # cached input tokens are priced at the cache rate
    assert prices.cost("gpt-4o", input_tokens=1000, output_tokens=0, cache_read_tokens=400) == pytest.approx(
        (600 * 2.5 + 400 * 1.25) / 1e6)


def test_users_extend_the_price_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = PriceTable.default()
    prices.register("llama-3-local", input=0.5, output=0.5)
    assert prices.cost("llama-3-local", input_tokens=2_000_000, output_tokens=0) == pytest.approx(1.0)
    extra = tmp_path / "prices.json"
    extra.write_text(json.dumps({"version": "ours-1", "models": {"gpt-4o": {"input": 1, "output": 1}}}))
    monkeypatch.setenv("SUTRAM_PRICES", str(extra))
    table = PriceTable.default()
    assert table.cost("gpt-4o", input_tokens=1_000_000, output_tokens=0) == pytest.approx(1.0)
    assert table.version.endswith("+ours-1")
    with pytest.raises(ConfigurationError, match="cannot be negative"):
        prices.register("x", input=-1, output=0)
    with pytest.raises(ConfigurationError, match="price table"):
        PriceTable.from_json('{"models": {"x": {"input": "free"}}}')


def test_masking_keeps_escapes_and_non_ascii_intact() -> None:
    text = Redactor().text({"note": "hello\nbob@example.com — café", "n": 3})
    assert text is not None
    assert json.loads(text) == {"note": "hello\n[REDACTED:email] — café", "n": 3}


def test_the_hook_sees_messages_as_stored_without_it() -> None:
    from langchain_core.messages import HumanMessage

    seen: list[object] = []
    Redactor(redact=lambda v: seen.append(v) or v).text([HumanMessage("hi")])
    assert seen == [[{"type": "human", "content": "hi"}]]
    assert Redactor().text([HumanMessage("hi")]) == '[{"type":"human","content":"hi"}]'


@pytest.mark.parametrize("content", [True, False])
def test_attributes_are_masked_and_stay_valid_json(db_url: str, content: bool) -> None:
    with Tracer.from_url(db_url, content=content) as tracer:
        span = Span("s", "s", None, "step", SpanKind.CHAIN, "acme")
        span.attributes["sutram.retry.last_error"] = "ConnectionError: reset\nreport to ops@example.com"
        span.attributes["owner"] = "ops@example.com"
        span.finish()
        tracer.end(span)
        tracer.flush()
        (row,) = tracer.store.run_spans("acme", "s")
    # error text is content: dropped with it; metadata is kept, masked
    expected = {"owner": "[REDACTED:email]"}
    if content:
        expected["sutram.retry.last_error"] = "ConnectionError: reset\nreport to [REDACTED:email]"
    assert row.attributes == expected
