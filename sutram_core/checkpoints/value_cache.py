"""A bounded cache of list values this process wrote as deltas.

Reading a list stored as a delta chain means reading the chain. The process that wrote
the value still has its full bytes, and a LangGraph run starts every step by reading the
checkpoint it has just written, so the store keeps those bytes (up to ``max_bytes``).

Only version keys that LangGraph makes unique are cached: strings with a random
fraction (``"000…0042.0.8137…"``). A value at such a version never changes, and no other
value can ever take its key, so the cache stays correct whatever other processes do;
integer versions, which a recreated thread reuses, are never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["ValueCache", "cacheable_version"]

_Key = tuple[str, str, str, str, str]  # tenant, thread, namespace, channel, version key


def cacheable_version(version_key: str) -> bool:
    """True for the text keys of LangGraph's unique string versions."""
    return version_key.startswith("s") and "." in version_key


class ValueCache:
    """LRU of serialized values, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self._items: OrderedDict[_Key, tuple[str, bytes]] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, key: _Key) -> tuple[str, bytes] | None:
        """The cached ``(type, bytes)`` of ``key``, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _Key, value: tuple[str, bytes]) -> None:
        """Remember ``value``; evict the least recently used past the size bound."""
        size = len(value[1])
        if size > self._max // 4:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._items[key] = value
            self._bytes += size
            while self._bytes > self._max:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted[1])

    def forget(self, tenant: str, thread_ids: Iterable[str] | None = None) -> None:
        """Drop the entries of some threads (None: of the whole tenant)."""
        wanted = None if thread_ids is None else set(thread_ids)
        with self._lock:
            for key in [k for k in self._items if k[0] == tenant and (wanted is None or k[1] in wanted)]:
                self._bytes -= len(self._items.pop(key)[1])
