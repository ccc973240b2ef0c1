"""Framework-free records that checkpoint stores read and write.

An adapter (for example the LangGraph saver) serializes its objects into these records;
a store persists them. Values are opaque ``(type, bytes)`` pairs produced by the
adapter's serializer; the store never deserializes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EMPTY",
    "ChannelValue",
    "CheckpointRecord",
    "DeltaHistory",
    "ListQuery",
    "StoredCheckpoint",
    "WriteRecord",
]

EMPTY = "empty"
"""The ``type`` of a :class:`ChannelValue` for a channel that has a version but no value."""


@dataclass(frozen=True, slots=True)
class ChannelValue:
    """A serialized channel value at one version (``version`` is a text key)."""

    channel: str
    version: str
    type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One pending write of a task, attached to a checkpoint."""

    task_id: str
    idx: int
    channel: str
    type: str
    data: bytes
    task_path: str = ""


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A checkpoint to store.

    ``channel_versions`` maps each channel whose value is stored as a row to its version
    key (a caller may keep small values in ``data`` instead: the LangGraph saver keeps
    scalars there); ``new_values`` carries only the versions that are new in this checkpoint.
    """

    tenant: str
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_id: str | None
    run_id: str | None
    type: str
    data: bytes
    metadata_json: str
    channel_versions: dict[str, str]
    new_values: list[ChannelValue]


@dataclass(slots=True)
class StoredCheckpoint:
    """A checkpoint as read back, with its pending writes.

    Its channel values are rebuilt from the stored rows by :meth:`channel_values`.
    """

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_id: str | None
    type: str
    data: bytes
    metadata_json: str
    channel_versions: dict[str, str]
    writes: list[WriteRecord] = field(default_factory=list)
    _rows: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    _where: str = ""

    def bind_values(self, rows: Mapping[tuple[str, str], Any], where: str) -> None:
        """Attach the stored value rows (shared by the checkpoints of one read)."""
        self._rows = rows
        self._where = where

    def channel_values(self) -> dict[str, tuple[str, bytes]]:
        """The serialized value of each channel that has one, as ``(type, bytes)``."""
        from sutram_core.checkpoints.list_delta import assemble_value

        out: dict[str, tuple[str, bytes]] = {}
        for channel, version in self.channel_versions.items():
            if (channel, version) in self._rows:  # a channel whose value was never stored has none
                value = assemble_value(channel, version, self._rows, self._where)
                if value is not None:
                    out[channel] = value
        return out


@dataclass(frozen=True, slots=True)
class DeltaHistory:
    """What one channel contributed along a checkpoint's ancestors (for LangGraph's
    ``DeltaChannel``): per channel, the writes of the ancestors oldest first, up to and
    including the nearest ancestor that stores a value, and that value (if any)."""

    writes: dict[str, list[WriteRecord]]
    seeds: dict[str, tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What :meth:`CheckpointStore.list` should return, newest first.

    ``thread_id`` None lists every thread of the tenant; ``checkpoint_ns`` None lists every
    namespace; ``before`` keeps checkpoints whose id sorts before it; ``metadata_filter``
    keeps checkpoints whose metadata has each key equal to the given value.
    """

    tenant: str
    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    before: str | None = None
    metadata_filter: dict[str, Any] | None = None
    limit: int | None = None
