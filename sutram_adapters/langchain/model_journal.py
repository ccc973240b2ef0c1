"""Every chat-model call inside a durable task is journaled, however it is made.

LangChain's cache hook (:class:`~sutram_adapters.langchain.journal.JournalCache`) sees only
calls that go through ``_generate_with_cache`` with the global cache: a model with
``cache=False`` or a cache of its own skips it, and ``stream``/``astream`` of a model that
streams (every provider integration) skip the cache entirely. So the journal hooks the two
places every chat-model call passes, once per process, and only acts inside an open
:class:`~sutram_core.runs.CallScope` (elsewhere the original runs untouched):

* ``BaseChatModel._generate_with_cache`` / ``_agenerate_with_cache``: invoke, ainvoke,
  batch, ``with_structured_output``, ``bind_tools``, ``astream_events`` over an invoke, a
  model with ``cache=False`` or its own cache (which keeps working: it is consulted for a
  call the journal does not answer);
* ``BaseChatModel.stream`` / ``astream`` of a model that really streams: the chunks are
  passed on as they arrive and recorded when the stream ends; a replay yields the recorded
  chunks (content, tool-call chunks, usage), so a caller streaming to a user still sees a
  stream. A stream the caller abandons, or that dies, is not recorded (it did not complete).

Each call takes its task's next journal position (the same key and input hash as the cache
hook used, so journals written before stay valid), the runner's budget check runs before a
call that is really made and its usage (streamed usage included, which often arrives only
in the last chunk) is settled after. In a run with a token budget, a model that takes an
output limit (a ``max_tokens`` or ``max_completion_tokens`` field: OpenAI, Anthropic,
Mistral, Groq and most others) is asked for no more than the tokens the budget has left; the
limit is not part of the call's journal key, so a replay still finds it. Text-completion
``LLM``s keep the cache hook.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import orjson
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessageChunk, BaseMessage, message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, ChatResult

from sutram_adapters.langchain.journal import _decode, _encode, _usage
from sutram_core.runs import (
    CallScope,
    JournalEntry,
    JournalKey,
    current_scope,
    input_hash,
    journaled_call,
)

__all__ = ["install_model_journal"]

_LOCK = threading.Lock()
_ORIGINAL: dict[str, Callable[..., Any]] = {}


def install_model_journal() -> None:
    """Hook the chat-model call paths into the journal (idempotent, once per process)."""
    with _LOCK:
        if _ORIGINAL:
            return
        for name, hooked in (("_generate_with_cache", _generate), ("_agenerate_with_cache", _agenerate),
                             ("stream", _stream), ("astream", _astream)):
            _ORIGINAL[name] = getattr(BaseChatModel, name)
            setattr(BaseChatModel, name, hooked)


def _digest(model: BaseChatModel, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> str:
    # the cache hook's key: the messages without their ids, and the model's settings
    normalized = [m.model_copy(update={"id": None}) if getattr(m, "id", None) is not None else m for m in messages]
    return input_hash(dumps(normalized), model._get_llm_string(stop=stop, **kwargs))


# the output-limit fields of LangChain's chat-model integrations that a call's kwargs override
OUTPUT_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")
# a model with no limit of its own is given one only this low: every current chat model
# accepts 4,096 output tokens, while a larger number may exceed what the model allows (the
# provider would refuse the call)
UNSET_LIMIT_CAP = 4096


def _capped(model: BaseChatModel, scope: CallScope, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for a call that is really made: with the model's output limit lowered to
    the tokens the run's budget has left, where there is a token budget and the model takes
    a limit. A limit already as low is kept; a model with none gets one when the budget has
    at most :data:`UNSET_LIMIT_CAP` tokens left. The limit the caller passed is the one
    lowered (whichever of the field names it used); a value that is not a positive number
    is the caller's to get refused, and is passed on untouched."""
    left = scope.tokens_left() if scope.tokens_left is not None else None
    if left is None:
        return kwargs
    passed = [f for f in OUTPUT_LIMIT_FIELDS if f in kwargs]
    fields = type(model).model_fields
    field = passed[0] if passed else next((f for f in OUTPUT_LIMIT_FIELDS if f in fields), None)
    if field is None:
        return kwargs
    current = kwargs[field] if passed else getattr(model, field, None)
    if current is not None:
        if isinstance(current, bool) or not isinstance(current, (int, float)) or current <= 0:
            return kwargs  # not a limit this can compare: the caller's, as given
        if current <= left:
            return kwargs
    elif left > UNSET_LIMIT_CAP:
        return kwargs
    return {**kwargs, field: max(1, left)}


def _record(scope: CallScope, key: JournalKey, digest: str, output: str, generations: Sequence[Any]) -> None:
    tokens, model, cost = _usage(generations)
    scope.record(key, JournalEntry("llm", model or "llm", digest, output, run_id=scope.run_id,
                                   tokens=tokens, cost_usd=cost))


# -- invoke, ainvoke, batch, structured output, tools ------------------------------------------

def _generate(self: BaseChatModel, messages: list[BaseMessage], stop: list[str] | None = None,
              run_manager: Any = None, **kwargs: Any) -> ChatResult:
    scope = current_scope()
    if scope is None:
        return _ORIGINAL["_generate_with_cache"](self, messages, stop, run_manager, **kwargs)  # type: ignore[no-any-return]
    digest = _digest(self, messages, stop, kwargs)
    key, found = scope.lookup("llm", digest)
    if found is not None:
        return ChatResult(generations=_decode(found.output))  # type: ignore[arg-type]
    with journaled_call():  # the cache hook inside must not journal this call again
        result: ChatResult = _ORIGINAL["_generate_with_cache"](self, messages, stop, run_manager,
                                                               **_capped(self, scope, kwargs))
    _record(scope, key, digest, _encode(result.generations), result.generations)
    return result


async def _agenerate(self: BaseChatModel, messages: list[BaseMessage], stop: list[str] | None = None,
                     run_manager: Any = None, **kwargs: Any) -> ChatResult:
    scope = current_scope()
    if scope is None:
        return await _ORIGINAL["_agenerate_with_cache"](self, messages, stop, run_manager, **kwargs)  # type: ignore[no-any-return]
    digest = _digest(self, messages, stop, kwargs)
    key, found = scope.lookup("llm", digest)
    if found is not None:
        return ChatResult(generations=_decode(found.output))  # type: ignore[arg-type]
    with journaled_call():
        result: ChatResult = await _ORIGINAL["_agenerate_with_cache"](self, messages, stop, run_manager,
                                                                      **_capped(self, scope, kwargs))
    _record(scope, key, digest, _encode(result.generations), result.generations)
    return result


# -- stream, astream ----------------------------------------------------------------------------

def _stream_key(model: BaseChatModel, input: Any, stop: list[str] | None, kwargs: dict[str, Any],
                async_api: bool) -> tuple[CallScope, JournalKey, str, Any] | None:
    """The journal position of a streamed call, or None when the call is not journaled here
    (no durable task, or a model that does not stream: its stream() goes through invoke)."""
    scope = current_scope()
    if scope is None or not model._should_stream(async_api=async_api, **{**kwargs, "stream": True}):
        return None
    digest = _digest(model, model._convert_input(input).to_messages(), stop, kwargs)
    key, found = scope.lookup("llm", digest)
    return scope, key, digest, found


def _chunks(raw: str) -> list[AIMessageChunk]:
    return [m for m in messages_from_dict(orjson.loads(raw)) if isinstance(m, AIMessageChunk)]


def _settle(scope: CallScope, key: JournalKey, digest: str, chunks: list[AIMessageChunk]) -> None:
    if not chunks:
        return
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    output = orjson.dumps([message_to_dict(c) for c in chunks], default=str).decode()
    _record(scope, key, digest, output, [ChatGeneration(message=merged)])


def _stream(self: BaseChatModel, input: Any, config: Any = None, *, stop: list[str] | None = None,
            **kwargs: Any) -> Iterator[AIMessageChunk]:
    journal = _stream_key(self, input, stop, kwargs, async_api=False)
    if journal is None:
        yield from _ORIGINAL["stream"](self, input, config, stop=stop, **kwargs)
        return
    scope, key, digest, found = journal
    if found is not None:
        yield from _chunks(found.output)
        return
    chunks: list[AIMessageChunk] = []
    for chunk in _ORIGINAL["stream"](self, input, config, stop=stop, **_capped(self, scope, kwargs)):
        chunks.append(chunk)
        yield chunk
    _settle(scope, key, digest, chunks)


async def _astream(self: BaseChatModel, input: Any, config: Any = None, *, stop: list[str] | None = None,
                   **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
    journal = _stream_key(self, input, stop, kwargs, async_api=True)
    if journal is None:
        async for chunk in _ORIGINAL["astream"](self, input, config, stop=stop, **kwargs):
            yield chunk
        return
    scope, key, digest, found = journal
    if found is not None:
        for chunk in _chunks(found.output):
            yield chunk
        return
    chunks: list[AIMessageChunk] = []
    async for chunk in _ORIGINAL["astream"](self, input, config, stop=stop, **_capped(self, scope, kwargs)):
        chunks.append(chunk)
        yield chunk
    _settle(scope, key, digest, chunks)
