"""What changed between two states of a thread, channel by channel, messages as messages.

The console's checkpoint comparison and fork diff show this instead of two JSON dumps: a
channel holding a list of chat messages is compared message by message (added, removed,
changed, same: aligned as a sequence, so one message added in the middle shows as one
added row), a dict key by key, anything else as its before and after value.

>>> [(c.channel, c.op) for c in diff_states({"n": 1, "x": 0}, {"n": 2, "y": 0})]
[('n', 'changed'), ('x', 'removed'), ('y', 'added')]
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from sutram_core.traces.messages import ChatMessage, as_messages

__all__ = ["ChannelChange", "KeyChange", "MessageRow", "diff_states"]

_MISSING: Any = object()


@dataclass(frozen=True)
class MessageRow:
    """One message of a compared conversation: ``op`` is "same", "added", "removed" or
    "changed" (then ``before`` is the message it replaced)."""

    op: str
    message: ChatMessage
    before: ChatMessage | None = None


@dataclass(frozen=True)
class KeyChange:
    """One key of a compared dict channel: "added", "removed" or "changed"."""

    key: str
    op: str
    a: Any = None
    b: Any = None


@dataclass
class ChannelChange:
    """A channel that differs: ``op`` is "added", "removed" or "changed"; ``messages`` (a
    conversation) or ``keys`` (a dict) say how, else ``a`` and ``b`` are the values."""

    channel: str
    op: str
    a: Any = None
    b: Any = None
    messages: list[MessageRow] | None = None
    keys: list[KeyChange] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """How many messages (or keys) were added, removed and changed."""
        ops = [r.op for r in self.messages] if self.messages is not None else [k.op for k in self.keys]
        return {op: ops.count(op) for op in ("added", "removed", "changed") if op in ops}

    def blocks(self) -> list[tuple[str, list[MessageRow]]]:
        """The message rows in runs of one op (a long run of unchanged ones folds as one)."""
        out: list[tuple[str, list[MessageRow]]] = []
        for row in self.messages or ():
            if out and out[-1][0] == row.op == "same":
                out[-1][1].append(row)
            else:
                out.append((row.op, [row]))
        return out


def _key(m: ChatMessage) -> str:
    return json.dumps([m.role, m.name, [p.__dict__ for p in m.parts]], sort_keys=True, default=str)


def _message_rows(a: list[ChatMessage], b: list[ChatMessage]) -> list[MessageRow]:
    rows: list[MessageRow] = []
    matcher = difflib.SequenceMatcher(a=[_key(m) for m in a], b=[_key(m) for m in b], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows += [MessageRow("same", m) for m in b[j1:j2]]
        elif op == "insert":
            rows += [MessageRow("added", m) for m in b[j1:j2]]
        elif op == "delete":
            rows += [MessageRow("removed", m) for m in a[i1:i2]]
        else:  # replaced: pair them up as changes, the surplus added or removed
            pairs = min(i2 - i1, j2 - j1)
            rows += [MessageRow("changed", b[j1 + k], a[i1 + k]) for k in range(pairs)]
            rows += [MessageRow("removed", m) for m in a[i1 + pairs:i2]]
            rows += [MessageRow("added", m) for m in b[j1 + pairs:j2]]
    return rows


def diff_states(a: dict[str, Any], b: dict[str, Any]) -> list[ChannelChange]:
    """The channels whose values differ between ``a`` and ``b`` (JSON values), sorted."""
    out: list[ChannelChange] = []
    for channel in sorted(set(a) | set(b)):
        va, vb = a.get(channel, _MISSING), b.get(channel, _MISSING)
        if va == vb:
            continue
        if va is _MISSING:
            out.append(ChannelChange(channel, "added", b=vb, messages=_conversation(None, vb)))
            continue
        if vb is _MISSING:
            out.append(ChannelChange(channel, "removed", a=va))
            continue
        change = ChannelChange(channel, "changed", va, vb, messages=_conversation(va, vb))
        if change.messages is None and isinstance(va, dict) and isinstance(vb, dict):
            change.keys = [KeyChange(str(k), "added" if k not in va else "removed" if k not in vb else "changed",
                                     va.get(k), vb.get(k))
                           for k in sorted(set(va) | set(vb), key=str) if va.get(k, _MISSING) != vb.get(k, _MISSING)]
        out.append(change)
    return out


def _conversation(va: Any, vb: Any) -> list[MessageRow] | None:
    mb = as_messages(vb)
    if mb is None:
        return None
    ma = [] if va is None or va == [] else as_messages(va)
    return None if ma is None else _message_rows(ma, mb)
