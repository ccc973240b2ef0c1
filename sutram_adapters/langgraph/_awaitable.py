"""Results that work whether or not the caller awaits them.

LangGraph's sync stores (``PostgresStore``, ``SqliteStore``) and their async twins
(``AsyncPostgresStore``, ``AsyncSqliteStore``) name the same lifecycle methods, sync in
one and ``async def`` in the other: ``store.setup()`` and ``await store.setup()``,
``store.start_ttl_sweeper()`` and ``await store.start_ttl_sweeper()``. One
``SutramStore`` serves both kinds of app, so these methods do their (short) work at once
and return a value that is also awaitable; awaiting it gives the same value back.

>>> import asyncio
>>> done = Done(3)
>>> done.value, asyncio.run(_twice(done))
(3, 3)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Done", "Stopped", "SweeperThread"]

T = TypeVar("T")


async def _twice(x: Any) -> Any:
    return await x


class Done(Generic[T]):
    """A finished call's result, awaitable (``await`` gives :attr:`value`)."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # pragma: no cover - makes this a generator

    def __repr__(self) -> str:
        return f"Done({self.value!r})"


class Stopped(Done[bool]):
    """Whether the sweeper stopped: true or false as a bool is, and awaitable."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return self.value

    def __eq__(self, other: object) -> bool:
        return bool(self.value) == other if isinstance(other, (bool, Stopped)) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


class SweeperThread(threading.Thread):
    """The TTL sweeper's daemon thread; ``await`` on it gives the thread itself."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(target=target, name="sutram-ttl-sweeper", daemon=True)

    def __await__(self) -> Generator[Any, None, SweeperThread]:
        return self
        yield  # pragma: no cover - makes this a generator
