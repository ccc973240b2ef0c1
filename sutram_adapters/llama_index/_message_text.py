"""What a LlamaIndex chat message is remembered as: the text memory search sees.

A plain message is its text. A tool call is not its JSON but what a person would recall:
``called tool get_weather(city=Paris)``; a tool's answer is ``tool get_weather returned:
city: Paris, temp_c: 18`` (a JSON object's fields, not its braces). Tool text is capped
(:data:`TOOL_TEXT_CHARS`), since tool results can be whole documents; the message itself
is kept whole by whoever stores it (the chat store keeps it as the record's value).

LlamaIndex carries tool calls as ``ToolCallBlock`` blocks (llama-index-core >= 0.14) or,
as older integrations and OpenAI-style messages do, in ``additional_kwargs["tool_calls"]``
(dicts or objects with ``id`` and ``function.name``/``function.arguments``); a tool's
answer is a message of role ``tool`` whose ``additional_kwargs`` name the call
(``tool_call_id``) and sometimes the tool (``name`` or ``tool_name``).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole

TOOL_TEXT_CHARS = 400  # a tool call or result as remembered, at most
TOOL_CALLS_SHOWN = 8  # calls of one message remembered one by one; the rest are counted
_ARG_CHARS = 80  # one argument's value, at most


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _cap(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


_PARSE_CHARS = 100_000  # longer text is shown as text, not parsed


def _parsed(arguments: Any) -> Any:
    """Arguments or a result as given, or the object their text holds: JSON, or a Python
    literal (a tool returning a dict is turned into its repr by LlamaIndex); literal_eval
    evaluates no code."""
    if not isinstance(arguments, str) or arguments.lstrip()[:1] not in ("{", "[") or len(arguments) > _PARSE_CHARS:
        return arguments
    try:
        return json.loads(arguments)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
        pass
    try:
        return ast.literal_eval(arguments)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return arguments


def _fields(value: Any, limit: int) -> str:
    """A JSON-ish value as ``key: value`` pairs (an object) or its text."""
    value = _parsed(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_cap(_scalar(v), _ARG_CHARS)}" for k, v in value.items())
    return _scalar(value) if value is not None else ""


def tool_calls(message: ChatMessage) -> list[tuple[str | None, str, Any]]:
    """The tool calls a message makes, as ``(call id, tool name, arguments)``."""
    calls: list[tuple[str | None, str, Any]] = []
    for block in message.blocks:
        if getattr(block, "block_type", None) == "tool_call":
            calls.append((getattr(block, "tool_call_id", None), str(getattr(block, "tool_name", "") or "?"),
                          getattr(block, "tool_kwargs", None)))
    seen = {c[0] for c in calls if c[0]}
    raw = message.additional_kwargs.get("tool_calls") if isinstance(message.additional_kwargs, Mapping) else None
    for call in raw if isinstance(raw, (list, tuple)) else ():
        function = _get(call, "function")
        name = _get(function, "name") if function is not None else _get(call, "name")
        call_id = _get(call, "id")
        if name is None or (call_id and call_id in seen):
            continue
        args = _get(function, "arguments") if function is not None else _get(call, "args")
        calls.append((str(call_id) if call_id else None, str(name), args))
    return calls


def _call_text(name: str, arguments: Any) -> str:
    args = _parsed(arguments)
    if isinstance(args, Mapping):
        inner = ", ".join(f"{k}={_cap(_scalar(v), _ARG_CHARS)}" for k, v in args.items())
    else:
        inner = _cap(_scalar(args), _ARG_CHARS) if args not in (None, "") else ""
    return _cap(f"called tool {name}({inner})", TOOL_TEXT_CHARS)


def tool_result_of(message: ChatMessage) -> tuple[str | None, str | None] | None:
    """``(call id, tool name)`` when ``message`` is a tool's answer, else None."""
    if message.role != MessageRole.TOOL:
        return None
    extra = message.additional_kwargs if isinstance(message.additional_kwargs, Mapping) else {}
    call_id, name = extra.get("tool_call_id"), extra.get("name") or extra.get("tool_name")
    return (str(call_id) if call_id else None, str(name) if name else None)


def remembered_text(message: ChatMessage, tool_names: Mapping[str, str] | None = None) -> str:
    """The text memory keeps for ``message`` (see the module docstring). ``tool_names``
    maps call ids to tool names, for a tool answer that does not name its tool."""
    text = message.content or ""
    result = tool_result_of(message)
    if result is not None:
        call_id, name = result
        name = name or (tool_names or {}).get(call_id or "")
        head = f"tool {name} returned: " if name else "tool returned: "
        return _cap(head + _fields(text, TOOL_TEXT_CHARS), TOOL_TEXT_CHARS)
    calls = tool_calls(message)
    if not calls:
        return text
    lines = [_call_text(name, args) for _, name, args in calls[:TOOL_CALLS_SHOWN]]
    if len(calls) > TOOL_CALLS_SHOWN:
        lines.append(f"and {len(calls) - TOOL_CALLS_SHOWN} more tool calls")
    return "\n".join([*([text] if text.strip() else []), *lines])


def names_of_calls(messages: list[ChatMessage]) -> dict[str, str]:
    """Call id -> tool name for every tool call in ``messages``."""
    return {call_id: name for m in messages for call_id, name, _ in tool_calls(m) if call_id}
