"""LangChain tool calls inside a durable task run exactly once by default.

``BaseTool.run`` / ``arun`` (what ``ToolNode``, ``create_react_agent`` and a direct
``tool.invoke`` all end in) are hooked once per process and act only inside an open
:class:`~sutram_core.runs.CallScope`: a tool call that completed before is answered from the
journal on replay instead of being executed again (a charge is not made twice).

* A call with a tool-call id (every call a model asked for) is keyed by that id within its
  task, not by its position: the calls of one ``ToolNode`` run in parallel, in no fixed
  order, and each keeps its own entry. The id is stable on replay because the model's
  message that carries it is itself journaled and checkpointed.
* A call without an id (a tool invoked directly) takes the task's next journal position.
* The input's hash is kept: a replay with other arguments (a fork) runs the tool again.
* What a tool returns is recorded when it is JSON or a message (``ToolMessage``); a tool
  that fails is not recorded (it runs again on retry), nor is one whose result is neither
  (a ``Command``): it runs again too, and a debug line says so.
* A tool that must run every time (a read of live data) opts out with
  :func:`always_run` (or ``metadata={"sutram_always_run": True}``).

Model calls made inside a tool are covered by the tool's entry (not journaled again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.tools import BaseTool

from sutram_core.runs import (
    CallScope,
    JournalEntry,
    JournalKey,
    current_scope,
    input_hash,
    journaled_call,
)

__all__ = ["ALWAYS_RUN", "always_run", "install_tool_journal"]

ALWAYS_RUN = "sutram_always_run"
_log = logging.getLogger("sutram.runs")
_LOCK = threading.Lock()
_ORIGINAL: dict[str, Callable[..., Any]] = {}
ToolT = TypeVar("ToolT", bound=BaseTool)


def always_run(tool: ToolT) -> ToolT:
    """Mark ``tool`` to run on every replay instead of answering from the journal."""
    tool.metadata = {**(tool.metadata or {}), ALWAYS_RUN: True}
    return tool


def install_tool_journal() -> None:
    """Hook ``BaseTool.run``/``arun`` into the journal (idempotent, once per process)."""
    with _LOCK:
        if not _ORIGINAL:
            _ORIGINAL["run"], _ORIGINAL["arun"] = BaseTool.run, BaseTool.arun
            BaseTool.run, BaseTool.arun = _run, _arun  # type: ignore[method-assign]


def _position(tool: BaseTool, tool_input: Any, tool_call_id: str | None) -> tuple[CallScope, JournalKey, str, JournalEntry | None] | None:
    scope = current_scope()
    if scope is None or (tool.metadata or {}).get(ALWAYS_RUN):
        return None
    digest = input_hash("tool", tool.name, tool_input if not isinstance(tool_input, dict) else
                        {k: v for k, v in tool_input.items() if k != "id"})
    if tool_call_id is None:
        key, found = scope.lookup("tool", digest, tool.name)
        return scope, key, digest, found
    key = JournalKey(scope.tenant, scope.thread_id, scope.checkpoint_ns, f"{scope.task_id}#tool:{tool_call_id}", 0)
    found = scope.journal.get(key)
    if found is not None and (found.kind != "tool" or found.input_hash != digest):
        found = None  # the same id asked something else (a fork changed it): run anew
    if found is not None:
        scope.replayed += 1
    return scope, key, digest, found


def _encode(result: Any) -> str | None:
    try:
        if isinstance(result, BaseMessage):
            return orjson.dumps({"message": message_to_dict(result)}).decode()
        return orjson.dumps({"value": result}).decode()
    except TypeError:
        return None


def _decode(raw: str) -> Any:
    stored = orjson.loads(raw)
    return messages_from_dict([stored["message"]])[0] if "message" in stored else stored["value"]


def _record(tool: BaseTool, place: tuple[CallScope, JournalKey, str, Any], result: Any) -> None:
    scope, key, digest, _ = place
    output = _encode(result)
    if output is None:
        _log.debug("tool %s returned %s, which is not journaled: it runs again on replay",
                   tool.name, type(result).__name__)
        return
    entry = JournalEntry("tool", tool.name, digest, output, run_id=scope.run_id)
    if key.task_id == scope.task_id:
        scope.record(key, entry)
    else:
        scope.journal.put(key, entry)


def _run(self: BaseTool, tool_input: Any, *args: Any, tool_call_id: str | None = None, **kwargs: Any) -> Any:
    place = _position(self, tool_input, tool_call_id)
    if place is None:
        return _ORIGINAL["run"](self, tool_input, *args, tool_call_id=tool_call_id, **kwargs)
    if place[3] is not None:
        return _decode(place[3].output)
    with journaled_call():
        result = _ORIGINAL["run"](self, tool_input, *args, tool_call_id=tool_call_id, **kwargs)
    _record(self, place, result)
    return result


async def _arun(self: BaseTool, tool_input: Any, *args: Any, tool_call_id: str | None = None, **kwargs: Any) -> Any:
    place = _position(self, tool_input, tool_call_id)
    if place is None:
        return await _ORIGINAL["arun"](self, tool_input, *args, tool_call_id=tool_call_id, **kwargs)
    if place[3] is not None:
        return _decode(place[3].output)
    with journaled_call():
        result = await _ORIGINAL["arun"](self, tool_input, *args, tool_call_id=tool_call_id, **kwargs)
    _record(self, place, result)
    return result
