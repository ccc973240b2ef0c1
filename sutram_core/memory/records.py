"""The memory record and the values that describe one.

A memory lives in a tenant, under a namespace (a tuple of labels such as
``("users", "u42", "preferences")``) and a key. Its ``kind`` says what sort of memory it is:

- ``episodic``: what happened (a run failed, a user asked for X last Tuesday);
- ``semantic``: what is known (the user prefers green tea);
- ``procedural``: how to do things (instructions, prompts); every put adds a version.

A fact that stops being true is *closed* (``valid_to`` is set), not deleted: it stays
readable "as of" any earlier time. ``provenance`` names the run, thread, checkpoint or span
that produced the memory.

Namespaces under :data:`SYSTEM_ROOT` (``("sutram", ...)``) hold Sutram's own memories, such
as the durable runner's run outcomes (``("sutram", "runs", graph)``). A search, count or
namespace listing without a namespace prefix leaves them out, so they never mix into an
app's memories; a prefix that starts with ``"sutram"`` reads them on purpose.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import orjson

from sutram_core.errors import InvalidMemoryError

__all__ = [
    "MAX_PAGE",
    "MAX_TTL_SECONDS",
    "SYSTEM_ROOT",
    "MemoryKind",
    "MemoryRecord",
    "NamespaceMatch",
    "Provenance",
    "SearchHit",
    "check_number",
    "from_micros",
    "now_micros",
    "to_micros",
    "validate_json",
    "validate_key",
    "validate_namespace",
    "validate_page",
    "validate_record",
    "validate_ttl",
]

# Labels are stored joined by this separator (each label is followed by one), so a
# namespace prefix is a string prefix and a range scan finds it.
NS_SEP = "\x1f"

# The root label of Sutram's own memories (see the module docstring).
SYSTEM_ROOT = "sutram"

# Integers a memory can hold or a filter can compare with: SQLite stores 64-bit signed
# integers, and a JSON number beyond them would be rounded (or refused) by a database.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# A TTL beyond this is a mistake (pass None for "never expires"); it keeps every expiry
# time inside the range a datetime and a 64-bit microsecond count can hold.
MAX_TTL_SECONDS = 100 * 365 * 86_400
# limit and offset of a page: far beyond any real page, far inside SQL's 64-bit LIMIT.
MAX_PAGE = 2**31 - 1
# The epoch seconds a datetime can hold (years 1 to 9999).
_MIN_EPOCH, _MAX_EPOCH = -62_135_596_800, 253_402_300_799


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
    # one vector, or (for field_texts) one row per text: the record scores by its best row
    embedding: Sequence[Any] | None = field(default=None, repr=False)
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
    # texts embedded one vector each instead of ``text`` (LangGraph's index fields), where
    # the backend keeps several vectors per record; ``text`` still feeds keyword search
    field_texts: list[str] | None = field(default=None, repr=False)

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
    """A namespace condition for :meth:`MemoryStore.list_namespaces`; ``"*"`` matches any label.

    ``"not_prefix"`` keeps the namespaces that do not start with ``path`` (how listings
    leave out :data:`SYSTEM_ROOT`)."""

    kind: str  # "prefix", "suffix" or "not_prefix"
    path: tuple[str, ...]

    def matches(self, namespace: tuple[str, ...]) -> bool:
        """Whether ``namespace`` satisfies this condition."""
        if self.kind == "not_prefix":
            return not NamespaceMatch("prefix", self.path).matches(namespace)
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


def check_number(number: int | float, where: str) -> None:
    """Raise :class:`InvalidMemoryError` unless ``number`` is a finite float or an integer
    within the 64-bit signed range (booleans pass: they are not numbers here)."""
    if isinstance(number, bool):
        return
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidMemoryError(
            f"{where} is {number!r}: numbers must be finite (NaN and infinities have no JSON form; "
            "store them as strings or None)"
        )
    if isinstance(number, int) and not INT_MIN <= number <= INT_MAX:
        raise InvalidMemoryError(
            f"{where} is {number}, outside the 64-bit integer range -2**63 to 2**63 - 1 "
            "(larger integers can be stored as strings)"
        )


def validate_json(doc: Any, where: str) -> None:
    """Raise :class:`InvalidMemoryError` naming the first field of ``doc`` (a value or the
    metadata of a memory) that JSON cannot hold faithfully: a NaN or infinite float, an
    integer beyond 64 bits. Nothing is rewritten (JSON encoders would store NaN as null).

    >>> validate_json({"scores": [1.0, float("nan")]}, "value")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sutram_core.errors.InvalidMemoryError: value.scores[1] is nan: numbers must be finite ...
    """
    stack: list[tuple[Any, str]] = [(doc, where)]
    while stack:  # a loop, not recursion: deep documents meet the encoder's own depth check
        item, path = stack.pop()
        if isinstance(item, (int, float)):
            check_number(item, path)
        elif isinstance(item, Mapping):
            stack.extend((v, f"{path}.{k}") for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
    try:  # what the encoder cannot write at all (an arbitrary object), on every backend alike
        orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidMemoryError(f"{where} must be JSON-serializable: {exc}") from exc


def validate_ttl(ttl_seconds: object, name: str = "ttl_seconds", scale: float = 1.0) -> float | None:
    """``ttl_seconds`` as a float, None for no expiry, or :class:`InvalidMemoryError`.

    A TTL is a positive finite number of seconds up to :data:`MAX_TTL_SECONDS` (100 years).
    ``name`` and ``scale`` let a caller that counts in other units (LangGraph: minutes,
    ``scale=60``) report the error in its own terms.
    """
    if ttl_seconds is None:
        return None
    limit = MAX_TTL_SECONDS / scale
    if (isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, (int, float))
            or not 0 < ttl_seconds <= limit):  # NaN fails the comparison too
        raise InvalidMemoryError(
            f"{name} is a number greater than 0 and at most {limit:.0f} (100 years), not {ttl_seconds!r}; "
            "pass None for a memory that does not expire"
        )
    return float(ttl_seconds) * scale


def validate_page(**values: object) -> None:
    """Raise :class:`InvalidMemoryError` unless each value (``limit``, ``offset``) is an
    integer from 0 to :data:`MAX_PAGE` (2**31 - 1)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PAGE:
            raise InvalidMemoryError(f"{name} is an integer from 0 to {MAX_PAGE} (2**31 - 1), not {value!r}")


def validate_record(rec: MemoryRecord) -> MemoryRecord:
    """``rec`` if its value, metadata and TTL can be stored as given, else
    :class:`InvalidMemoryError` naming the field (every write checks its records with this)."""
    if not isinstance(rec.value, Mapping):
        raise InvalidMemoryError(f"a memory's value is a JSON object (a dict), not {type(rec.value).__name__}")
    if not isinstance(rec.metadata, Mapping):
        raise InvalidMemoryError(f"metadata is a dict, not {type(rec.metadata).__name__}")
    validate_json(rec.value, "value")
    validate_json(rec.metadata, "metadata")
    validate_ttl(rec.ttl_seconds)
    return rec


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
    if (isinstance(moment, (int, float)) and not isinstance(moment, bool)
            and _MIN_EPOCH <= moment <= _MAX_EPOCH):  # NaN fails the comparison too
        return int(moment * 1_000_000)
    raise InvalidMemoryError(
        f"a time is a datetime or epoch seconds from {_MIN_EPOCH} to {_MAX_EPOCH} (years 1 to 9999), not {moment!r}"
    )


def from_micros(micros: int | None) -> datetime | None:
    """Microseconds since the epoch as a UTC datetime (None stays None)."""
    if micros is None:
        return None
    return datetime.fromtimestamp(micros / 1_000_000, tz=timezone.utc)
