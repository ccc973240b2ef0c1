"""The models the recipes use: a real provider when its API key is set, else a fake one
that answers offline and reports token usage like a provider does."""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class FakeChatModel(BaseChatModel):
    """Answers with a canned sentence about the last message; counts words as tokens."""

    model_name: str = "gpt-4o-mini"

    @property
    def _llm_type(self) -> str:
        return "cookbook-fake"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        text = f"(fake model) You asked: {str(messages[-1].content)[:80]}"
        prompt = sum(len(str(m.content).split()) for m in messages)
        msg = AIMessage(content=text, response_metadata={"model_name": self.model_name},
                        usage_metadata={"input_tokens": prompt, "output_tokens": len(text.split()),
                                        "total_tokens": prompt + len(text.split())})
        return ChatResult(generations=[ChatGeneration(message=msg)])


def chat_model() -> BaseChatModel:
    """``ChatOpenAI`` when OPENAI_API_KEY is set (and langchain-openai installed), else the fake."""
    if os.environ.get("OPENAI_API_KEY"):
        try:
            from langchain_openai import ChatOpenAI

            return ChatOpenAI(model="gpt-4o-mini", stream_usage=True)
        except ImportError:
            print("OPENAI_API_KEY is set but langchain-openai is not installed; using the fake model")
    return FakeChatModel()


def llama_index_llm() -> Any:
    """LlamaIndex's ``OpenAI`` when OPENAI_API_KEY is set, else a fake function-calling LLM
    that calls each tool once and reports usage in ``raw`` as OpenAI's integration does."""
    if os.environ.get("OPENAI_API_KEY"):
        try:
            from llama_index.llms.openai import OpenAI

            return OpenAI(model="gpt-4o-mini")
        except ImportError:
            print("OPENAI_API_KEY is set but llama-index-llms-openai is not installed; using the fake LLM")
    return _fake_llama_index_llm()


def _fake_llama_index_llm() -> Any:
    from sutram_adapters.demo.fake_llama_index import UsageFunctionCallingLLM

    return UsageFunctionCallingLLM()
