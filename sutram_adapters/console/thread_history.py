"""A thread's checkpoints as the console lists them: ids, steps, sources and times, read
without their values.

Listing a thread through the saver would fetch and decode every checkpoint's channel values
(300 checkpoints of 1 MB each cost the server about 315 MB to show one). The list needs
none of them: the step and source are in the metadata (JSON), and the time is in the
checkpoint id itself (LangGraph's ids are UUIDv6, whose first 60 bits are a timestamp).
The one checkpoint a page shows is then decoded on its own (``SutramSaver.get_tuple``).

>>> from datetime import datetime, timezone
>>> datetime.fromtimestamp(written_ns("1f0b2c4e-6f7a-6d1e-8000-000000000000") // 10**9, timezone.utc)
datetime.datetime(2025, 10, 26, 23, 38, 40, tzinfo=datetime.timezone.utc)
>>> written_ns("not-a-uuid") is None
True
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from sutram_core.backends.sql.database import Database, Plan, Step
from sutram_core.backends.sql.schema import checkpoints
from sutram_core.traces.messages import ChatMessage, as_messages
from sutram_core.traces.store import RunSummary

__all__ = ["CheckpointSummary", "Turn", "conversation", "thread_history", "written_ns"]

_UUID_EPOCH = 0x01B21DD213814000  # 100 ns intervals from 1582-10-15 to 1970-01-01


@dataclass(frozen=True)
class CheckpointSummary:
    """One checkpoint of a thread, without its state."""

    checkpoint_id: str
    parent_id: str | None
    metadata: dict[str, Any]

    @property
    def written_ns(self) -> int | None:
        return written_ns(self.checkpoint_id)


def written_ns(checkpoint_id: str) -> int | None:
    """When a checkpoint was written (Unix ns), read from its UUIDv6 id; None for other ids."""
    try:
        value = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if value.version != 6:
        return None
    n = value.int
    ticks = ((n >> 80) << 12) | ((n >> 64) & 0x0FFF)
    return max(0, (ticks - _UUID_EPOCH) * 100)


def thread_history(db: Database, tenant: str, thread_id: str, limit: int = 500) -> list[CheckpointSummary]:
    """The root-namespace checkpoints of ``thread_id`` in ``tenant``, newest first."""
    c = checkpoints.c

    def plan() -> Plan[list[CheckpointSummary]]:
        rows = yield Step(
            select(c.checkpoint_id, c.parent_checkpoint_id, c.metadata)
            .where(c.tenant_id == tenant, c.thread_id == thread_id, c.checkpoint_ns == "")
            .order_by(c.checkpoint_id.desc())
            .limit(limit)
        )
        return [CheckpointSummary(str(r[0]), r[1], dict(json.loads(r[2]))) for r in rows]

    return db.run(plan(), write=False)


@dataclass(frozen=True)
class Turn:
    """One run of a thread and the messages it added to the conversation."""

    run: RunSummary
    messages: list[ChatMessage]


def conversation(runs: Sequence[RunSummary], history: Sequence[CheckpointSummary],
                 values: Callable[[str], dict[str, Any]]) -> list[Turn] | None:
    """A thread's conversation turn by turn: for each traced run (oldest first), the messages
    its last checkpoint holds beyond the previous run's. One checkpoint is decoded per run,
    none per step. None when the thread keeps no list of messages (a channel named
    ``messages``, else the first channel holding one)."""
    turns: list[Turn] = []
    seen = 0
    for run in sorted(runs, key=lambda r: r.start_ns):
        end = run.end_ns if run.end_ns is not None else None
        last = next((h for h in history if (h.written_ns or 0) >= run.start_ns
                     and (end is None or (h.written_ns or 0) <= end)), None)  # newest first
        if last is None:
            continue
        state = values(last.checkpoint_id)
        channel = "messages" if as_messages(state.get("messages")) is not None else next(
            (k for k, v in state.items() if as_messages(v) is not None), None)
        if channel is None:
            continue
        messages = as_messages(state[channel]) or []
        turns.append(Turn(run, messages[seen:] if len(messages) >= seen else messages))
        seen = len(messages)
    return turns or None
