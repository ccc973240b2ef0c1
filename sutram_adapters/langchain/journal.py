"""Journaled LLM calls for LangChain models, through LangChain's own cache hook.

``JournalCache`` is a LangChain ``BaseCache``. Inside an open
:class:`~sutram_core.runs.CallScope` (a task of a durable run), each chat model or LLM call
takes the task's next journal position: a call that completed before is answered from the
journal (no provider call, no cost), a new one is made and recorded. Outside a scope it
defers to the cache that was installed before it (or caches nothing), so installing it
changes nothing for code that is not run durably.

    from langchain_core.globals import set_llm_cache
    set_llm_cache(JournalCache())
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import orjson
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation

from sutram_core.runs import CallScope, JournalEntry, JournalKey, current_scope, input_hash
from sutram_core.traces.pricing import PriceTable

__all__ = ["JournalCache"]

# the journal position a lookup that missed reserved, for the update that follows it; kept
# per scope (not per context: LangChain's async cache calls run in copied contexts)
_RESERVED: weakref.WeakKeyDictionary[CallScope, dict[tuple[str, str], list[tuple[JournalKey, str]]]] = (
    weakref.WeakKeyDictionary()
)
_RESERVED_LOCK = threading.Lock()


def _encode(generations: Sequence[Generation]) -> str:
    # plain JSON (message dicts), so reading an entry back builds messages and nothing else
    out = []
    for gen in generations:
        info = {k: v for k, v in (gen.generation_info or {}).items() if k != REPLAYED} or None
        if isinstance(gen, ChatGeneration):
            out.append({"type": "chat", "message": message_to_dict(gen.message), "info": info})
        else:
            out.append({"type": "text", "text": gen.text, "info": info})
    return orjson.dumps(out, default=str).decode()


REPLAYED = "sutram_replayed"  # in a replayed generation's generation_info (traces: no cost)


def _decode(raw: str) -> list[Generation]:
    gens: list[Generation] = []
    for item in orjson.loads(raw):
        info = {**(item.get("info") or {}), REPLAYED: True}
        if item["type"] == "chat":
            gens.append(ChatGeneration(message=messages_from_dict([item["message"]])[0], generation_info=info))
        else:
            gens.append(Generation(text=item["text"], generation_info=info))
    return gens


def _usage(generations: Sequence[Any]) -> tuple[int, str, float]:
    """Tokens, model name and cost (USD, from Sutram's price table; 0 for unknown models)."""
    tokens, cost, model = 0, 0.0, ""
    for gen in generations:
        message = getattr(gen, "message", None)
        usage = getattr(message, "usage_metadata", None) or {}
        name = str((getattr(message, "response_metadata", None) or {}).get("model_name", ""))
        model = model or name
        given, produced = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        tokens += given + produced
        cost += _prices().cost(name, input_tokens=given, output_tokens=produced) or 0.0
    return tokens, model, cost


_PRICES: list[PriceTable] = []


def _prices() -> PriceTable:
    """Sutram's default price table, loaded once."""
    if not _PRICES:
        _PRICES.append(PriceTable.default())
    return _PRICES[0]


class JournalCache(BaseCache):
    """LangChain's cache hook, answering from the Sutram call journal inside a durable task.

    Each task's :class:`~sutram_core.runs.CallScope` names the journal it records to, so one
    JournalCache serves every runner of a process. ``inner`` is the cache used outside
    durable tasks (the one that was installed before, if any).
    """

    def __init__(self, inner: BaseCache | None = None) -> None:
        self.inner = inner

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The recorded generations of this call, or None (then the model is called)."""
        scope = current_scope()
        if scope is None:
            return self.inner.lookup(prompt, llm_string) if self.inner is not None else None
        digest = input_hash(prompt, llm_string)
        key, found = scope.lookup("llm", digest)
        if found is not None:
            return _decode(found.output)
        with _RESERVED_LOCK:
            _RESERVED.setdefault(scope, {}).setdefault((prompt, llm_string), []).append((key, digest))
        return None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Record the generations of a call that was just made."""
        scope = current_scope()
        reserved = None
        if scope is not None:
            with _RESERVED_LOCK:
                waiting = _RESERVED.get(scope, {}).get((prompt, llm_string))
                reserved = waiting.pop(0) if waiting else None
        if scope is None or reserved is None:
            if self.inner is not None:
                self.inner.update(prompt, llm_string, return_val)
            return
        key, digest = reserved
        tokens, model, cost = _usage(return_val)
        scope.record(key, JournalEntry("llm", model or "llm", digest, _encode(return_val), run_id=scope.run_id,
                                       tokens=tokens, cost_usd=cost))

    def clear(self, **kwargs: Any) -> None:
        """Clears the inner cache only: the journal is a record, not a cache."""
        if self.inner is not None:
            self.inner.clear(**kwargs)
