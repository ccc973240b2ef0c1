"""Journaled LlamaIndex LLM calls: ``journaled(llm)``.

LlamaIndex has no cache hook to route calls through (LangChain's ``set_llm_cache`` is what
:class:`~sutram_adapters.langchain.JournalCache` uses), so the LLM object itself is given
the journal: ``journaled(llm)`` returns a copy whose class is a subclass of the LLM's own,
with ``chat``, ``complete``, their streaming and async twins (and so ``chat_with_tools``,
agents and query engines built on them) going through the call journal.

Inside a task of a durable run (an open :class:`~sutram_core.runs.CallScope`) each call
takes the task's next journal position: one made before (before a crash, or in the thread
a fork came from) is answered from the journal; a new one is made, and its response,
tokens and cost are recorded. Outside a durable task the LLM behaves as before.

    from sutram_adapters.llama_index import journaled
    llm = journaled(OpenAI(model="gpt-4o-mini"))

Responses are kept as JSON (never pickled): a replayed response has the message, its
blocks and ``additional_kwargs`` (provider objects such as tool calls come back as
dictionaries that also allow attribute access), and no ``raw``. A replayed stream yields
the whole response as one chunk.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, ClassVar, TypeVar

import orjson
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.llms.llm import LLM

from sutram_adapters.langchain.journal import _prices
from sutram_adapters.llama_index._usage import llm_usage
from sutram_core.runs import (
    CallScope,
    JournalEntry,
    JournalKey,
    current_scope,
    input_hash,
    journaled_call,
)

__all__ = ["journaled"]

L = TypeVar("L", bound=LLM)
R = TypeVar("R", ChatResponse, CompletionResponse)

_CLASSES: dict[type[LLM], type[LLM]] = {}
_CLASSES_LOCK = threading.Lock()


class _Attrs(dict[str, Any]):
    """A replayed provider object: a dictionary that also answers attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _attrs(value: Any) -> Any:
    if isinstance(value, dict):
        return _Attrs({k: _attrs(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_attrs(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """orjson's fallback: pydantic models and other objects as their fields."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


def _stable(value: Any) -> Any:
    """A call's inputs without process-specific parts (object addresses): tools by name."""
    if isinstance(value, dict):
        return {str(k): _stable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    meta = getattr(value, "metadata", None)
    if meta is not None and getattr(meta, "name", None):
        return {"tool": meta.name, "description": getattr(meta, "description", None)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return _stable(dump(mode="json"))
        except Exception:  # a model holding objects JSON cannot: its type is stable enough
            return type(value).__qualname__
    return type(value).__qualname__


def _encode(response: ChatResponse | CompletionResponse) -> str:
    data = {k: v for k, v in response.model_dump(exclude={"raw"}).items() if k != "delta"}
    return orjson.dumps(data, default=_plain).decode()


def _decode(raw: str, kind: type[R]) -> R:
    data = orjson.loads(raw)
    extra = _attrs(data.get("additional_kwargs") or {})
    if kind is ChatResponse:
        message = ChatMessage.model_validate(data["message"])
        message.additional_kwargs = _attrs(message.additional_kwargs)
        return ChatResponse(message=message, additional_kwargs=extra,  # type: ignore[return-value]
                            delta=str(message.content or ""))
    return CompletionResponse(text=data.get("text", ""), additional_kwargs=extra,  # type: ignore[return-value]
                              delta=data.get("text", ""))


class _Call:
    """One journaled call: its position, inputs' hash, and how to record its response."""

    def __init__(self, llm: LLM, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.llm = llm
        self.scope: CallScope | None = current_scope()
        self.key: JournalKey | None = None
        self.found: JournalEntry | None = None
        if self.scope is None:
            return
        self.model = str(getattr(llm.metadata, "model_name", "") or type(llm).__name__)
        self.digest = input_hash("llama_index", operation, type(llm).__mro__[1].__qualname__, self.model,
                                 _stable(args), _stable(kwargs))
        self.key, self.found = self.scope.lookup("llm", self.digest)

    def record(self, response: ChatResponse | CompletionResponse) -> None:
        if self.scope is None or self.key is None:
            return
        given, produced, _cached, model = llm_usage(response)
        given, produced = given or 0, produced or 0
        name = model or self.model
        cost = _prices().cost(name, input_tokens=given, output_tokens=produced) or 0.0
        self.scope.record(self.key, JournalEntry("llm", name, self.digest, _encode(response),
                                                 run_id=self.scope.run_id, tokens=given + produced, cost_usd=cost))


def _sync(base: type[LLM], operation: str, kind: type[R]) -> Callable[..., R]:
    method = getattr(base, operation)

    def call(self: LLM, *args: Any, **kwargs: Any) -> R:
        journal = _Call(self, operation, args, kwargs)
        if journal.found is not None:
            return _decode(journal.found.output, kind)
        with journaled_call():
            response: R = method(self, *args, **kwargs)
        journal.record(response)
        return response

    call.__name__ = operation
    call.__doc__ = f"{operation}, answered from the Sutram journal when this call was made before."
    return call


def _async(base: type[LLM], operation: str, kind: type[R]) -> Callable[..., Any]:
    method = getattr(base, operation)

    async def call(self: LLM, *args: Any, **kwargs: Any) -> R:
        journal = _Call(self, operation, args, kwargs)
        if journal.found is not None:
            return _decode(journal.found.output, kind)
        with journaled_call():
            response: R = await method(self, *args, **kwargs)
        journal.record(response)
        return response

    call.__name__ = operation
    call.__doc__ = f"{operation}, answered from the Sutram journal when this call was made before."
    return call


def _stream(base: type[LLM], operation: str, kind: type[R]) -> Callable[..., Any]:
    method = getattr(base, operation)

    def call(self: LLM, *args: Any, **kwargs: Any) -> Generator[R, None, None]:
        journal = _Call(self, operation, args, kwargs)
        if journal.found is not None:
            replay = _decode(journal.found.output, kind)
            return (r for r in (replay,))
        with journaled_call():
            chunks = iter(method(self, *args, **kwargs))

        def relay() -> Generator[R, None, None]:
            last = None
            while True:
                with journaled_call():
                    chunk = next(chunks, None)
                if chunk is None:
                    break
                last = chunk
                yield chunk
            if last is not None:  # a stream read to its end: the last chunk holds the whole reply
                journal.record(last)

        return relay()

    call.__name__ = operation
    call.__doc__ = f"{operation}, replayed from the Sutram journal (as one chunk) when made before."
    return call


def _astream(base: type[LLM], operation: str, kind: type[R]) -> Callable[..., Any]:
    method = getattr(base, operation)

    async def call(self: LLM, *args: Any, **kwargs: Any) -> AsyncGenerator[R, None]:
        journal = _Call(self, operation, args, kwargs)
        if journal.found is not None:
            replay = _decode(journal.found.output, kind)

            async def once() -> AsyncGenerator[R, None]:
                yield replay

            return once()
        with journaled_call():
            chunks = await method(self, *args, **kwargs)

        async def relay() -> AsyncGenerator[R, None]:
            last = None
            while True:
                with journaled_call():
                    chunk = await anext(chunks, None)
                if chunk is None:
                    break
                last = chunk
                yield chunk
            if last is not None:
                journal.record(last)

        return relay()

    call.__name__ = operation
    call.__doc__ = f"{operation}, replayed from the Sutram journal (as one chunk) when made before."
    return call


def _journaled_class(base: type[LLM]) -> type[LLM]:
    with _CLASSES_LOCK:
        made = _CLASSES.get(base)
        if made is None:
            members: dict[str, Any] = {
                "__module__": __name__,
                "__doc__": f"{base.__name__} with its calls journaled by Sutram (see ``journaled``).",
                "__annotations__": {"sutram_journaled": ClassVar[bool]},
                "sutram_journaled": True,
                "chat": _sync(base, "chat", ChatResponse),
                "complete": _sync(base, "complete", CompletionResponse),
                "achat": _async(base, "achat", ChatResponse),
                "acomplete": _async(base, "acomplete", CompletionResponse),
                "stream_chat": _stream(base, "stream_chat", ChatResponse),
                "stream_complete": _stream(base, "stream_complete", CompletionResponse),
                "astream_chat": _astream(base, "astream_chat", ChatResponse),
                "astream_complete": _astream(base, "astream_complete", CompletionResponse),
            }
            made = type(f"Journaled{base.__name__}", (base,), members)
            _CLASSES[base] = made
        return made


def journaled(llm: L) -> L:
    """A copy of ``llm`` whose calls go through the Sutram call journal inside durable tasks
    (see the module docstring); ``llm`` itself is left as it was."""
    if getattr(type(llm), "sutram_journaled", False):
        return llm
    twin = copy.copy(llm)
    object.__setattr__(twin, "__class__", _journaled_class(type(llm)))
    return twin

