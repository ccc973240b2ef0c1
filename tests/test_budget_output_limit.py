"""A token budget is passed to the model: a model that takes an output limit is asked for no
more than the tokens the run has left, so a run ends past ``max_tokens`` by at most the last
call's input; the overshoot is flagged on the run's trace as in the ledger; each on SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from sutram_adapters.langgraph.durable import durable
from sutram_core.runs import Budget, RunStatus
from sutram_core.traces import open_trace_store
from tests.fake_models import EchoChatModel

ASKED: list[Any] = []  # the output limit each provider call was made with


class LimitedModel(EchoChatModel):
    """Answers 50 words, or as many as ``max_tokens`` allows (one token per word, as the
    usage it reports counts them); records the limit each call was made with."""

    max_tokens: int | None = None

    def _answer(self, kwargs: dict[str, Any]) -> tuple[str, int | None]:
        limit = kwargs.get("max_tokens", self.max_tokens)
        ASKED.append(limit)
        words = 50 if limit is None else min(50, limit)
        return " ".join(["word"] * words), limit

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        reply, _ = self._answer(kwargs)
        prompt = len(str(messages[-1].content).split())
        usage = {"input_tokens": prompt, "output_tokens": len(reply.split()),
                 "total_tokens": prompt + len(reply.split())}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply, usage_metadata=usage))])  # type: ignore[arg-type]

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        reply, _ = self._answer(kwargs)
        prompt = len(str(messages[-1].content).split())
        words = reply.split()
        for i, word in enumerate(words):
            last = i == len(words) - 1
            usage = {"input_tokens": prompt, "output_tokens": len(words), "total_tokens": prompt + len(words)}
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " ", usage_metadata=usage if last else None))  # type: ignore[arg-type]


class Talk(TypedDict):
    replies: list[str]


def _graph(model: EchoChatModel, streamed: bool = False) -> Any:
    def talk(state: Talk) -> dict[str, Any]:
        replies = []
        for i in range(3):
            prompt = [HumanMessage(f"tell me about tea part {i}")]  # 6 input tokens
            if streamed:
                replies.append("".join(str(c.content) for c in model.stream(prompt)))
            else:
                replies.append(str(model.invoke(prompt).content))
        return {"replies": replies}

    builder = StateGraph(Talk)
    builder.add_node("talk", talk)
    builder.add_edge(START, "talk")
    builder.add_edge("talk", END)
    return builder.compile()


@pytest.fixture(autouse=True)
def _fresh_log() -> Iterator[None]:
    ASKED.clear()
    yield
    ASKED.clear()


@pytest.mark.parametrize("streamed", [False, True], ids=["invoke", "stream"])
def test_the_model_is_asked_for_no_more_than_the_budget_has_left(db_url: str, calls: Any, streamed: bool) -> None:
    with durable(_graph(LimitedModel(), streamed), url=db_url, tenant="acme") as runner:
        runner.invoke({"replies": []}, thread_id=f"t-{streamed}", run_id=f"r-{streamed}", budget=Budget(max_tokens=70))
        run = runner.ledger.get("acme", f"r-{streamed}")
        # call 0: 70 left, 6 + 50 spent; call 1: 14 left, so 14 words, 6 + 14 spent (76):
        # past the budget by the last call's input only; no third call
        assert ASKED == [70, 14]
        assert run.status is RunStatus.PAUSED and run.spend.tokens == 76
        assert run.overshoot == "over max_tokens by 6 (76 of 70 tokens)"
        with open_trace_store(db_url) as store:
            (summary,) = store.runs("acme", thread_id=f"t-{streamed}")
            root = next(s for s in store.run_spans("acme", summary.run_id) if s.parent_id is None)
        assert root.attributes["sutram.budget.overshoot"] == run.overshoot
        # the limit is not part of the journal key: a resume replays both calls and makes the third
        out = runner.resume(f"r-{streamed}", budget=Budget(max_tokens=1_000))
        assert ASKED == [70, 14, 924] and len(out["replies"]) == 3
        assert runner.ledger.get("acme", f"r-{streamed}").status is RunStatus.COMPLETED


def test_a_lower_limit_of_the_models_own_is_kept_and_a_large_budget_sets_none(db_url: str, calls: Any) -> None:
    with durable(_graph(LimitedModel(max_tokens=5)), url=db_url, tenant="acme") as runner:
        runner.invoke({"replies": []}, thread_id="own", run_id="own", budget=Budget(max_tokens=1_000))
    assert ASKED == [5, 5, 5]
    ASKED.clear()
    with durable(_graph(LimitedModel()), url=db_url, tenant="acme") as runner:
        # 1,000,000 left: a limit that high may be more than the model allows; none is set
        runner.invoke({"replies": []}, thread_id="big", run_id="big", budget=Budget(max_tokens=1_000_000))
        runner.invoke({"replies": []}, thread_id="none", run_id="none")  # no budget, no limit
    assert ASKED == [None] * 6


def test_a_model_without_a_limit_field_is_called_as_before(db_url: str, calls: Any) -> None:
    seen: list[dict[str, Any]] = []

    class Plain(EchoChatModel):
        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
            seen.append(kwargs)
            return super()._generate(messages, stop, run_manager, **kwargs)

    with durable(_graph(Plain()), url=db_url, tenant="acme") as runner:
        runner.invoke({"replies": []}, thread_id="plain", run_id="plain", budget=Budget(max_tokens=1_000))
    assert seen == [{}, {}, {}]


def test_the_limit_the_caller_passed_is_the_one_lowered_and_odd_values_pass_untouched() -> None:
    from types import SimpleNamespace

    from sutram_adapters.langchain.model_journal import _capped

    scope: Any = SimpleNamespace(tokens_left=lambda: 60)
    model = LimitedModel()
    assert _capped(model, scope, {}) == {"max_tokens": 60}
    assert _capped(model, scope, {"max_tokens": 100.0}) == {"max_tokens": 60}
    assert _capped(model, scope, {"max_tokens": 50.0}) == {"max_tokens": 50.0}  # lower already: kept
    # the caller's own field name is the one capped, no second limit added beside it
    assert _capped(model, scope, {"max_completion_tokens": 500}) == {"max_completion_tokens": 60}
    for odd in ("100", True, 0, -5):  # not a limit to compare: the provider's to refuse, as given
        assert _capped(model, scope, {"max_tokens": odd}) == {"max_tokens": odd}
    assert _capped(model, SimpleNamespace(tokens_left=None), {}) == {}
