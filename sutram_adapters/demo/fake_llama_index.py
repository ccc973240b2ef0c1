"""A fake LlamaIndex function-calling LLM for demos, recipes and tests (no network).

It calls every tool it is given once, then answers, and reports token usage in ``raw``
the way LlamaIndex's OpenAI integration does, so traces show tokens and cost offline.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM

__all__ = ["RecallLLM", "UsageFunctionCallingLLM"]


def _usage(messages: Sequence[ChatMessage], reply: ChatMessage) -> dict[str, Any]:
    prompt = sum(len(str(m.content or "").split()) for m in messages) + 5
    return {"usage": {"prompt_tokens": prompt, "completion_tokens": len(str(reply.content or "").split()) + 2},
            "model": "gpt-4o-mini-2024-07-18"}


class UsageFunctionCallingLLM(MockFunctionCallingLLM):
    """LlamaIndex's mock function-calling LLM, reporting usage as ``gpt-4o-mini``."""

    @property
    def metadata(self) -> LLMMetadata:
        """A function-calling chat model named gpt-4o-mini."""
        return LLMMetadata(is_function_calling_model=True, model_name="gpt-4o-mini")

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """One reply, with usage."""
        reply = self._get_response_generator()(messages, **kwargs)
        return ChatResponse(message=reply, raw=_usage(messages, reply))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Echo the prompt as a completion, with usage."""
        reply = ChatMessage(role="assistant", content=f"echo: {prompt}")
        return CompletionResponse(text=str(reply.content), raw=_usage([ChatMessage(role="user", content=prompt)], reply))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async twin of :meth:`chat`."""
        return self.chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """The reply as a one-chunk stream whose chunk carries the usage."""
        reply = self._get_response_generator()(messages, **kwargs)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            yield ChatResponse(message=reply, delta=str(reply.content or ""), raw=_usage(messages, reply))

        return gen()


class RecallLLM(UsageFunctionCallingLLM):
    """Answers from what memory put in front of it: the lines of the ``<facts>`` block
    (``SutramMemory``'s fact block), or "I don't know yet." when there are none. Calls no tools."""

    def _get_response_generator(self) -> Any:
        def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
            seen = "\n".join(str(m.content or "") for m in messages)
            facts = []
            if "<facts>" in seen:
                body = seen.split("<facts>", 1)[1].split("</facts>", 1)[0]
                facts = [line.strip("- ").strip() for line in body.splitlines() if line.strip()]
            text = "From memory: " + "; ".join(facts) if facts else "I don't know yet."
            return ChatMessage(role="assistant", content=text)

        return respond
