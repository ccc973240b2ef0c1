"""Small builders shared by the tests."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base.id import uuid6


def config(thread: str, ns: str = "", checkpoint_id: str | None = None, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns, **extra}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def checkpoint(values: dict[str, Any] | None = None, versions: dict[str, Any] | None = None, step: int = 0) -> dict[str, Any]:
    values = values or {}
    versions = versions if versions is not None else {k: 1 for k in values}
    return {
        "v": 4,
        "id": str(uuid6(clock_seq=step)),
        "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": values,
        "channel_versions": versions,
        "versions_seen": {},
        "updated_channels": None,
    }


def put(saver: Any, thread: str, values: dict[str, Any] | None = None, *, parent: dict[str, Any] | None = None,
        ns: str = "", run_id: str = "run-1", **conf: Any) -> dict[str, Any]:
    """Put one checkpoint whose channels are all new; return the stored config."""
    cp = checkpoint(values)
    parent_id = parent["configurable"]["checkpoint_id"] if parent else None
    return saver.put(config(thread, ns, parent_id, **conf), cp, {"source": "loop", "step": 0, "run_id": run_id},
                     dict(cp["channel_versions"]))
