"""Serialize growing list channels without re-serializing the items already checkpointed.

A conversation's ``messages`` list is handed to the saver whole at every step. Its
msgpack encoding is the array header followed by each item's encoding, so when the
leading items are the very objects that were checkpointed last time for the same thread
and channel, their bytes are reused and only the new items are encoded. The result is
byte-for-byte what ``JsonPlusSerializer.dumps_typed`` would return (tested).

Like LangGraph's reducers, this treats a value that has been checkpointed as immutable:
an item edited in place *after* it was checkpointed, while remaining the same object in
the list, would keep its earlier bytes. Pass ``reuse_list_items=False`` to
``SutramSaver`` to serialize every value whole.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from sutram_core.checkpoints.list_delta import msgpack_array_header

try:
    from langgraph.checkpoint.serde.jsonplus import _msgpack_enc
except ImportError:  # pragma: no cover - depends on the installed langgraph
    _msgpack_enc = None

__all__ = ["ListItemSerializer"]

_Key = tuple[str, str, str, str]


class ListItemSerializer:
    """``dumps_typed`` for channel values, reusing the bytes of unchanged list items."""

    def __init__(self, serde: SerializerProtocol, *, enabled: bool = True, max_lists: int = 256) -> None:
        self.serde = serde
        self._encode: Callable[[Any], bytes] | None = (
            _msgpack_enc if enabled and type(serde) is JsonPlusSerializer and not serde.pickle_fallback else None
        )
        self._lists: OrderedDict[_Key, tuple[tuple[Any, ...], list[bytes]]] = OrderedDict()
        self._max = max_lists
        self._lock = threading.Lock()

    def dumps(self, key: _Key, value: Any) -> tuple[str, bytes]:
        """Serialize ``value`` of the list channel named by ``key`` (tenant, thread, ns, channel)."""
        encode = self._encode
        if encode is None or type(value) is not list or not value:
            return self.serde.dumps_typed(value)
        with self._lock:
            previous = self._lists.get(key)
        chunks: list[bytes] = []
        if previous is not None:
            items, encoded = previous
            n = len(items)
            if len(value) >= n and all(map(operator.is_, value[:n], items)):
                chunks = list(encoded)
        try:
            chunks.extend(encode(item) for item in value[len(chunks):])
        except Exception:
            return self.serde.dumps_typed(value)  # let the serializer raise its own error
        with self._lock:
            self._lists[key] = (tuple(value), chunks)
            self._lists.move_to_end(key)
            while len(self._lists) > self._max:
                self._lists.popitem(last=False)
        return "msgpack", msgpack_array_header(len(value)) + b"".join(chunks)

    def forget(self, tenant: str, thread_id: str | None = None) -> None:
        """Drop what is remembered for a thread (or a whole tenant)."""
        with self._lock:
            for key in [k for k in self._lists if k[0] == tenant and (thread_id is None or k[1] == thread_id)]:
                del self._lists[key]
