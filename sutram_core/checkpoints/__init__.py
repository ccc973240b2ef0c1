"""Checkpoint records and the list-delta codec, free of any framework."""

from sutram_core.checkpoints.list_delta import ListDeltaEncoder, assemble_value
from sutram_core.checkpoints.records import (
    EMPTY,
    ChannelValue,
    CheckpointRecord,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)

__all__ = [
    "EMPTY",
    "ChannelValue",
    "CheckpointRecord",
    "ListDeltaEncoder",
    "ListQuery",
    "StoredCheckpoint",
    "WriteRecord",
    "assemble_value",
]
