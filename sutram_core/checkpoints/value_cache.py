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
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["BoundedLRU", "ValueCache", "cacheable_version"]

K = TypeVar("K", bound=tuple[Hashable, ...])
V = TypeVar("V")
_Key = tuple[str, str, str, str, str]  # tenant, thread, namespace, channel, version key


def cacheable_version(version_key: str) -> bool:
    """True for the text keys of LangGraph's unique string versions."""
    return version_key.startswith("s") and "." in version_key


class BoundedLRU(Generic[K, V]):
    """A thread-safe LRU whose values weigh at most ``limit`` in total (``weight`` of each
    value; 1 by default: a bound on the number of entries). Keys start with the tenant and
    the thread, so that a deleted thread's entries can be dropped."""

    def __init__(self, limit: int, weight: Callable[[V], int] = lambda _: 1) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._total = 0
        self._limit = limit
        self._weight = weight
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        """The values of those of ``keys`` held, in one hold of the lock."""
        with self._lock:
            found = {key: self._items[key] for key in keys if key in self._items}
            for key in found:
                self._items.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        """Remember ``value``; evict the least recently used past the bound. A value heavier
        than a quarter of the bound is not kept (it would evict most of the others)."""
        size = self._weight(value)
        if size > max(1, self._limit // 4):
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= self._weight(old)
            self._items[key] = value
            self._total += size
            while self._total > self._limit:
                _, evicted = self._items.popitem(last=False)
                self._total -= self._weight(evicted)

    def pop(self, key: K) -> None:
        """Forget ``key`` if held."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= self._weight(old)

    def forget(self, tenant: str, thread_ids: Iterable[str] | None = None) -> None:
        """Drop the entries of some threads (None: of the whole tenant)."""
        wanted = None if thread_ids is None else set(thread_ids)
        with self._lock:
            for key in [k for k in self._items if k[0] == tenant and (wanted is None or k[1] in wanted)]:
                self._total -= self._weight(self._items.pop(key))

    def __len__(self) -> int:
        return len(self._items)


class ValueCache(BoundedLRU[_Key, tuple[str, bytes]]):
    """LRU of serialized ``(type, bytes)`` values, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        super().__init__(max_bytes, weight=_size)


def _size(value: tuple[str, bytes]) -> int:
    return len(value[1])
