"""The memory record and the values that describe one.

A memory lives in a tenant, under a namespace (a tuple of labels such as
``("users", "u42", "preferences")``) and a key. Its ``kind`` says what sort of memory it is:

- ``episodic``: what happened (a run failed, a user asked for X last Tuesday);
- ``semantic``: what is known (the user prefers green tea);
- ``procedural``: how to do things (instructions, prompts); every put adds a version.

A fact that stops being true is *closed* (``valid_to`` is set), not deleted: it stays
readable "as of" any earlier time. ``provenance`` names the run, thread, checkpoint or span
that produced the memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from sutram_core.errors import InvalidMemoryError

__all__ = [
    "MemoryKind",
    "MemoryRecord",
    "NamespaceMatch",
    "Provenance",
    "SearchHit",
    "from_micros",
    "now_micros",
    "to_micros",
    "validate_key",
    "validate_namespace",
]

# Labels are stored joined by this separator (each label is followed by one), so a
# namespace prefix is a string prefix and a range scan finds it.
NS_SEP = "\x1f"


class MemoryKind(str, Enum):
    """What sort of memory a record is."""

    EPISODIC = "episodic"
    SEMANTIC = "semantic"
    PROCEDURAL = "procedural"

    @classmethod
    def parse(cls, value: object) -> MemoryKind:
        """``value`` as a kind, or :class:`InvalidMemoryError` naming the accepted ones."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidMemoryError(
                f"unknown memory kind {value!r}: use one of {[k.value for k in cls]}"
            ) from None


@dataclass(frozen=True)
class Provenance:
    """Where a memory came from: any of the run, thread, checkpoint and span that wrote it."""

    run_id: str | None = None
    thread_id: str | None = None
    checkpoint_id: str | None = None
    span_id: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The fields that are set."""
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Provenance:
        """The inverse of :meth:`as_dict` (unknown keys are ignored)."""
        data = data or {}
        return cls(**{k: str(data[k]) for k in ("run_id", "thread_id", "checkpoint_id", "span_id") if data.get(k)})


@dataclass
class MemoryRecord:
    """One memory as stored and read back.

    ``text`` is what search sees (keyword and vector); ``value`` is the JSON payload a
    framework stores (LangGraph's item value). Times are timezone-aware UTC datetimes.
    """

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    text: str = ""
    kind: MemoryKind = MemoryKind.SEMANTIC
    metadata: dict[str, Any] = field(default_factory=dict)
    embedding: Sequence[float] | None = field(default=None, repr=False)
    provenance: Provenance = field(default_factory=Provenance)
    ttl_seconds: float | None = None
    id: str = ""
    tenant_id: str = ""
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    expires_at: datetime | None = None
    supersedes: str | None = None

    @property
    def is_current(self) -> bool:
        """True while the record is not closed."""
        return self.valid_to is None


@dataclass
class SearchHit:
    """A record found by a search, with its fused score and the scores that fed it.

    ``score`` is None for a search without a query (a filtered listing).
    """

    record: MemoryRecord
    score: float | None = None
    vector_score: float | None = None
    keyword_score: float | None = None


@dataclass(frozen=True)
class NamespaceMatch:
    """A namespace condition for :meth:`MemoryStore.list_namespaces`; ``"*"`` matches any label."""

    kind: str  # "prefix" or "suffix"
    path: tuple[str, ...]

    def matches(self, namespace: tuple[str, ...]) -> bool:
        """Whether ``namespace`` satisfies this condition."""
        if len(namespace) < len(self.path):
            return False
        ends = namespace[: len(self.path)] if self.kind == "prefix" else namespace[len(namespace) - len(self.path):]
        return all(p == "*" or p == n for p, n in zip(self.path, ends, strict=True))


def validate_namespace(namespace: object, *, allow_empty: bool = False) -> tuple[str, ...]:
    """``namespace`` as a tuple of labels, or :class:`InvalidMemoryError`.

    Labels are non-empty strings without control characters. ``allow_empty`` admits the
    empty tuple, which as a search prefix means "every namespace".
    """
    if isinstance(namespace, str) or not isinstance(namespace, (tuple, list)):
        raise InvalidMemoryError(
            f"a namespace is a tuple of labels such as ('users', 'u42'), not {namespace!r}"
        )
    labels = tuple(namespace)
    if not labels and not allow_empty:
        raise InvalidMemoryError("a namespace needs at least one label")
    for label in labels:
        if not isinstance(label, str) or not label or any(ord(ch) < 0x20 for ch in label):
            raise InvalidMemoryError(
                f"invalid namespace label {label!r} in {labels!r}: labels are non-empty strings "
                "without control characters"
            )
    return labels


def validate_key(key: object) -> str:
    """``key`` if it is a usable key (a non-empty string), else :class:`InvalidMemoryError`."""
    if not isinstance(key, str) or not key or "\x00" in key:
        raise InvalidMemoryError(f"a memory key is a non-empty string without NUL bytes, not {key!r}")
    return key


def encode_namespace(namespace: tuple[str, ...]) -> str:
    """The stored form of a namespace: each label followed by the separator."""
    return "".join(label + NS_SEP for label in namespace)


def decode_namespace(stored: str) -> tuple[str, ...]:
    """The inverse of :func:`encode_namespace`."""
    return tuple(stored.split(NS_SEP)[:-1])


def now_micros() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def to_micros(moment: datetime | float | int) -> int:
    """A datetime (naive means UTC) or epoch seconds, in microseconds since the epoch."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return int(moment.timestamp() * 1_000_000)
    if isinstance(moment, (int, float)) and not isinstance(moment, bool) and math.isfinite(moment):
        return int(moment * 1_000_000)
    raise InvalidMemoryError(f"a time is a datetime or epoch seconds, not {moment!r}")


def from_micros(micros: int | None) -> datetime | None:
    """Microseconds since the epoch as a UTC datetime (None stays None)."""
    if micros is None:
        return None
    return datetime.fromtimestamp(micros / 1_000_000, tz=timezone.utc)
