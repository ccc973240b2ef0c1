"""Fake LangChain models that report token usage like a provider does (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult


def _usage(messages: list[BaseMessage], reply: str) -> dict[str, int]:
    prompt = sum(len(str(m.content).split()) for m in messages) + 3
    completion = len(reply.split())
    return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}


class EchoChatModel(BaseChatModel):
    """Answers ``echo: <last message>``; usage counts words. Streams word by word, with
    the usage on the last chunk only, as OpenAI does with ``stream_usage``."""

    model_name: str = "gpt-4o-mini"
    fail_times: int = 0  # raise ConnectionError on the first calls (for retry tests)
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _reply(self, messages: list[BaseMessage]) -> str:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise ConnectionError("upstream connection reset")
        return f"echo: {messages[-1].content}"

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:
        reply = self._reply(messages)
        msg = AIMessage(content=reply, usage_metadata=_usage(messages, reply),  # type: ignore[arg-type]
                        response_metadata={"model_name": f"{self.model_name}-2024-07-18"})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        words = reply.split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            chunk = AIMessageChunk(
                content=word + ("" if last else " "),
                usage_metadata=_usage(messages, reply) if last else None,  # type: ignore[arg-type]
                response_metadata={"model_name": f"{self.model_name}-2024-07-18"} if last else {},
            )
            gen = ChatGenerationChunk(message=chunk)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.content, chunk=gen)  # type: ignore[arg-type]
            yield gen
