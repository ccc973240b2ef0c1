"""Fake LlamaIndex models that report token usage the way OpenAI's integration does."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    LLMMetadata,
)
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM


def _usage(messages: Sequence[ChatMessage], reply: ChatMessage) -> dict[str, Any]:
    prompt = sum(len(str(m.content or "").split()) for m in messages) + 5
    return {"usage": {"prompt_tokens": prompt, "completion_tokens": len(str(reply.content or "").split()) + 2},
            "model": "gpt-4o-mini-2024-07-18"}


class UsageFunctionCallingLLM(MockFunctionCallingLLM):
    """Calls every tool it is given once, then answers; reports usage in ``raw``."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_function_calling_model=True, model_name="gpt-4o-mini")

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        reply = self._get_response_generator()(messages, **kwargs)
        return ChatResponse(message=reply, raw=_usage(messages, reply))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        reply = self._get_response_generator()(messages, **kwargs)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            yield ChatResponse(message=reply, delta=str(reply.content or ""), raw=_usage(messages, reply))

        return gen()
