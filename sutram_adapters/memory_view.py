"""How the ``sutram memory`` command shows memories: a table for people, JSON for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sutram_adapters._term import Table, Terminal
from sutram_core.memory import SearchHit

__all__ = ["memories_json", "render_memories"]


def _row(hit: SearchHit) -> dict[str, object]:
    r = hit.record
    return {
        "namespace": list(r.namespace), "key": r.key, "kind": r.kind.value, "text": r.text, "value": r.value,
        "metadata": r.metadata, "score": hit.score, "vector_score": hit.vector_score,
        "keyword_score": hit.keyword_score, "id": r.id, "version": r.version,
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "updated_at": r.updated_at.isoformat() if r.updated_at else None,
        "valid_to": r.valid_to.isoformat() if r.valid_to else None,
        "provenance": r.provenance.as_dict(),
    }


def memories_json(hits: Sequence[SearchHit]) -> str:
    """The hits as a JSON list (one object per memory, with its scores and provenance)."""
    return json.dumps([_row(h) for h in hits], indent=1, default=str)


def render_memories(hits: Sequence[SearchHit], console: Terminal, title: str) -> None:
    """A table: score, kind, namespace/key, text, updated, provenance."""
    table = Table(title=title)
    for col in ("score", "kind", "namespace / key", "text", "updated", "from"):
        table.add_column(col)
    for h in hits:
        r = h.record
        prov = ", ".join(f"{k}={v}" for k, v in r.provenance.as_dict().items())
        table.add_row(
            f"{h.score:.3f}" if h.score is not None else "-", r.kind.value, "/".join(r.namespace) + f" : {r.key}",
            (r.text or json.dumps(r.value))[:160], r.updated_at.strftime("%Y-%m-%d %H:%M:%S") if r.updated_at else "",
            prov or "-",
        )
    console.print(table)
    if not hits:
        console.print("no memories match")
