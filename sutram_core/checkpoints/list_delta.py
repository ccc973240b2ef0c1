"""Store growing lists (such as a conversation's messages) as appended tails.

LangGraph hands a saver the whole value of a changed channel. For a list that only
grows, storing each version whole makes total storage grow with the square of the
conversation length. This module works on the serialized bytes instead: when a list
channel's new msgpack body starts with the exact bytes of the previous version's body,
only the new tail is stored, as a *delta* row pointing at the previous version. Because
the comparison is on bytes, an element edited in place, removed or reordered simply
yields a full row; nothing is assumed about the objects.

A chain of deltas starts at a *full* row. A new full row is written once the bytes held
in the chain's deltas would exceed ``SNAPSHOT_RATIO`` times the full row's size, so the
full rows of a growing list form a geometric series (each at least 1.25 times the last):
total bytes stay within a constant factor (at most 1 + 1/ratio = 5) of the final list's
size plus the appended items, growing linearly, and reading a value touches at most 1.25
times its size in a bounded number of rows.

This is pure logic; stores call :meth:`ListDeltaEncoder.encode` before writing and
:meth:`ListDeltaEncoder.commit` after their transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import xxhash

from sutram_core.checkpoints.records import EMPTY, ChannelValue, CheckpointRecord
from sutram_core.checkpoints.value_cache import BoundedLRU
from sutram_core.errors import CheckpointCorruptError

__all__ = [
    "BlobRow",
    "ListDeltaEncoder",
    "assemble_value",
    "msgpack_array_header",
    "split_msgpack_array",
]

FULL, DELTA = "full", "delta"
MSGPACK = "msgpack"
SNAPSHOT_RATIO = 0.25


def split_msgpack_array(data: bytes) -> tuple[int, int] | None:
    """Return ``(item_count, header_length)`` if ``data`` is a msgpack array, else None."""
    if not data:
        return None
    b = data[0]
    if 0x90 <= b <= 0x9F:
        return b & 0x0F, 1
    if b == 0xDC and len(data) >= 3:
        return int.from_bytes(data[1:3], "big"), 3
    if b == 0xDD and len(data) >= 5:
        return int.from_bytes(data[1:5], "big"), 5
    return None


def msgpack_array_header(count: int) -> bytes:
    """The msgpack header of an array of ``count`` items."""
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class BlobRow:
    """A channel value as stored: full, delta or empty."""

    channel: str
    version: str
    kind: str
    type: str
    data: bytes
    base_version: str | None = None
    prev_version: str | None = None
    items: int | None = None


@dataclass(frozen=True, slots=True)
class _ListTail:
    version: str
    base_version: str
    count: int
    body_len: int
    body_hash: bytes
    base_len: int
    chain_len: int


@dataclass(frozen=True, slots=True)
class _ThreadTail:
    checkpoint_id: str
    versions: Mapping[str, str]
    lists: Mapping[str, _ListTail]


_Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class PendingTail:
    """What :meth:`ListDeltaEncoder.commit` records once the write is durable."""

    key: _Key
    tail: _ThreadTail


class ListDeltaEncoder:
    """Decide, per new channel value, whether to store it whole or as an appended tail.

    It remembers the last checkpoint written on each (tenant, thread, namespace) in a
    bounded LRU. A delta is only written when the new checkpoint's parent is that
    remembered checkpoint; otherwise (another process, a fork, a restart) the value is
    stored whole, which is always correct.
    """

    def __init__(self, max_threads: int = 1024) -> None:
        self._tails: BoundedLRU[_Key, _ThreadTail] = BoundedLRU(max_threads)

    def encode(self, record: CheckpointRecord) -> tuple[list[BlobRow], PendingTail | None]:
        """Decide the rows for ``record``'s new values; commit the returned tail once written
        (None: nothing to remember, a checkpoint without lists to write or carry)."""
        key = (record.tenant, record.thread_id, record.checkpoint_ns)
        tail = self._tails.get(key)
        if tail is not None and (record.parent_id is None or tail.checkpoint_id != record.parent_id):
            tail = None
        rows: list[BlobRow] = []
        lists: dict[str, _ListTail] = {}
        if tail is not None:
            lists = {
                ch: lt
                for ch, lt in tail.lists.items()
                if record.channel_versions.get(ch) == lt.version
            }
        if not lists and not record.new_values:
            # a tail without lists would let no later value be written as a delta
            return rows, None
        for value in record.new_values:
            lists.pop(value.channel, None)
            row, list_tail = self._encode_value(value, tail)
            rows.append(row)
            if list_tail is not None:
                lists[value.channel] = list_tail
        new_tail = _ThreadTail(record.checkpoint_id, dict(record.channel_versions), lists)
        return rows, PendingTail(key, new_tail)

    @staticmethod
    def _encode_value(
        value: ChannelValue, tail: _ThreadTail | None
    ) -> tuple[BlobRow, _ListTail | None]:
        if value.type == EMPTY:
            return BlobRow(value.channel, value.version, EMPTY, EMPTY, b""), None
        full = BlobRow(value.channel, value.version, FULL, value.type, value.data)
        header = split_msgpack_array(value.data) if value.type == MSGPACK else None
        if header is None:
            return full, None
        count, header_len = header
        body = memoryview(value.data)[header_len:]
        body_len = len(body)
        prev = None
        if tail is not None:
            prev_version = tail.versions.get(value.channel)
            candidate = tail.lists.get(value.channel)
            if candidate is not None and candidate.version == prev_version:
                prev = candidate
        if (
            prev is not None
            and count >= prev.count
            and body_len >= prev.body_len
            and prev.chain_len + (body_len - prev.body_len) <= prev.base_len * SNAPSHOT_RATIO
            and xxhash.xxh3_128_digest(body[: prev.body_len]) == prev.body_hash
        ):
            delta_len = body_len - prev.body_len
            row = BlobRow(
                value.channel,
                value.version,
                DELTA,
                value.type,
                bytes(body[prev.body_len :]),
                base_version=prev.base_version,
                prev_version=prev.version,
                items=count - prev.count,
            )
            return row, _ListTail(
                value.version,
                prev.base_version,
                count,
                body_len,
                xxhash.xxh3_128_digest(body),
                prev.base_len,
                prev.chain_len + delta_len,
            )
        return full, _ListTail(
            value.version, value.version, count, body_len, xxhash.xxh3_128_digest(body), body_len, 0
        )

    def commit(self, pending: PendingTail | None) -> None:
        """Remember a checkpoint whose rows are now committed."""
        if pending is None:
            return
        self._tails.put(pending.key, pending.tail)

    def forget(self, tenant: str, thread_ids: Iterable[str] | None = None) -> None:
        """Drop remembered tails (after deletes or prunes); None forgets the tenant."""
        self._tails.forget(tenant, thread_ids)


def assemble_value(
    channel: str, version: str, rows: Mapping[tuple[str, str], BlobRow], where: str
) -> tuple[str, bytes] | None:
    """Rebuild the serialized value of ``channel`` at ``version`` from stored rows.

    ``rows`` maps (channel, version) to rows, including every row of the delta chain.
    Returns None for an empty channel. Raises :class:`CheckpointCorruptError` when a
    chain is broken (``where`` names the thread for the message).
    """
    row = rows.get((channel, version))
    if row is None:
        raise CheckpointCorruptError(
            f"{where}: no stored value for channel {channel!r} at version {version!r}"
        )
    if row.kind == EMPTY:
        return None
    if row.kind == FULL:
        return row.type, row.data
    pieces: list[bytes] = []
    extra = 0
    seen = 0
    while row.kind == DELTA:
        pieces.append(row.data)
        extra += row.items or 0
        seen += 1
        prev = rows.get((channel, row.prev_version or ""))
        if prev is None or seen > len(rows):
            raise CheckpointCorruptError(
                f"{where}: the delta chain of channel {channel!r} at version {version!r} "
                f"is broken at version {row.prev_version!r}"
            )
        row = prev
    header = split_msgpack_array(row.data)
    if row.kind != FULL or header is None:
        raise CheckpointCorruptError(
            f"{where}: the delta chain of channel {channel!r} does not start at a stored list"
        )
    count, header_len = header
    pieces.reverse()
    data = b"".join([msgpack_array_header(count + extra), row.data[header_len:], *pieces])
    return row.type, data
