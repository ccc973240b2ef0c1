"""Checkpoint records and the list-delta codec, free of any framework."""

from sutram_core.checkpoints.list_delta import ListDeltaEncoder, assemble_value
from sutram_core.checkpoints.records import (
    EMPTY,
    ChannelValue,
    CheckpointRecord,
    DeltaHistory,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)

__all__ = [
    "EMPTY",
    "ChannelValue",
    "CheckpointRecord",
    "DeltaHistory",
    "ListDeltaEncoder",
    "ListQuery",
    "StoredCheckpoint",
    "WriteRecord",
    "assemble_value",
]
