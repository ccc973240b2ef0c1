"""One redaction path for everything Sutram writes: span content, error text in span
attributes, the run ledger's errors and pause reasons, and the run memories made from
them. The content switch, the user's hook and the masker apply to each."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from sutram_adapters.langchain import SutramCallbackHandler
from sutram_adapters.langgraph.durable import durable
from sutram_core.memory import MemoryStore
from sutram_core.runs import RunStatus
from sutram_core.traces import Tracer
from sutram_core.traces.redaction import mask_secrets
from tests.fake_models import EchoChatModel

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiIsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
SECRETS = {
    "stripe": "sk_live_51HxYzAbCdEfGhIjKlMnOp",
    "huggingface": "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "jwt": JWT,
    "aws key id": "AKIAIOSFODNN7EXAMPLE",
    "aws secret": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "github": "ghp_" + "A1b2C3d4E5" * 4,
    "github fine-grained": "github_pat_" + "11ABCDEFG0" * 6,
    "slack": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "private key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----",
    "url password": "postgresql://app:hunter2hunter2@db.internal:5432/prod",
    "openai": "sk-proj-" + "x" * 40,
}


@pytest.mark.parametrize("name", list(SECRETS))
def test_the_masker_finds_each_kind_of_secret(name: str) -> None:
    secret = SECRETS[name]
    masked = mask_secrets(f"call failed with {secret} (retrying)")
    assert "[REDACTED:" in masked and "(retrying)" in masked
    core = secret.split("=")[-1].strip().split("@")[0].split("//")[-1]
    assert core not in masked


def test_ordinary_text_is_left_alone() -> None:
    text = "order ORD-19494 for ask_price; see https://example.com/docs and pk_id=3"
    assert mask_secrets(text) == text


class S(TypedDict):
    x: int


def _boom(state: S) -> dict[str, Any]:
    raise PermissionError(f"upstream refused token {JWT}")


def _graph() -> Any:
    b = StateGraph(S)
    b.add_node("boom", _boom)
    b.add_edge(START, "boom")
    b.add_edge("boom", END)
    return b.compile()


def _run_failing(db_url: str, **options: Any) -> tuple[Any, str]:
    with durable(_graph(), url=db_url, **options) as runner:
        with pytest.raises(PermissionError):
            runner.invoke({"x": 1}, thread_id="t-secret", run_id="r-secret")
        run = runner.ledger.get("default", "r-secret")
    with MemoryStore.from_url(db_url, tenant="default") as memory:
        found = memory.get(("sutram", "runs", run.graph_name or "graph"), "r-secret")
    assert found is not None
    return run, json.dumps(found.value)


def test_with_content_off_no_error_text_reaches_the_ledger_or_run_memory(db_url: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTRAM_TRACE_CONTENT", "false")
    run, memory = _run_failing(db_url)
    assert run.status == RunStatus.FAILED and run.error == "PermissionError"
    assert "eyJ" not in memory and "PermissionError" in memory


def test_with_content_on_the_hook_and_masker_apply_to_the_ledger_and_run_memory(db_url: str) -> None:
    seen: list[Any] = []

    def hook(value: Any) -> Any:
        seen.append(value)
        return value.replace("upstream", "[upstream]") if isinstance(value, str) else value

    run, memory = _run_failing(db_url, redact=hook)
    assert run.error == "PermissionError: [upstream] refused token [REDACTED:jwt]"
    assert "eyJ" not in memory and "[REDACTED:jwt]" in memory
    assert any(isinstance(v, str) and "refused token" in v for v in seen)


@pytest.mark.parametrize("content", [True, False])
def test_a_retried_calls_error_text_follows_the_switch_and_the_hook(db_url: str, content: bool) -> None:
    class Leaky(EchoChatModel):
        def _reply(self, messages: Any) -> str:
            self.calls += 1
            if self.calls <= 2:
                raise ConnectionError(f"reset while sending Authorization: {JWT}")
            return "ok"

    with Tracer.from_url(db_url, content=content, redact=lambda v: v) as tracer:
        handler = SutramCallbackHandler(tracer=tracer, tenant="acme")
        model = Leaky().with_retry(stop_after_attempt=3, wait_exponential_jitter=False,
                                   retry_if_exception_type=(ConnectionError,))
        model.invoke("hi", {"callbacks": [handler]})
        tracer.flush()
        (run,) = tracer.store.runs("acme")
        stored = json.dumps([s.attributes for s in tracer.store.run_spans("acme", run.run_id)]
                            + [s.error_message for s in tracer.store.run_spans("acme", run.run_id)])
    assert "eyJ" not in stored
    assert ("sutram.retry.last_error" in stored) is content
