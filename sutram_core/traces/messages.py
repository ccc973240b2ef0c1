"""A model call's stored inputs and outputs read back as chat messages.

The adapters store what the framework handed over (see :mod:`sutram_core.traces.redaction`):
LangChain chat models ``[[{"type": "human", "content": ...}, ...]]``, text models
``["prompt", ...]``; LlamaIndex ``{"messages": [...]}`` / ``{"prompt": ...}`` in and a
``ChatResponse`` (``{"message": {"role": ..., "blocks": [...]}}``) or ``CompletionResponse``
(``{"text": ...}``) out. This module reads each shape into one form, role + parts, which is
the structure of the OpenTelemetry GenAI conventions' ``gen_ai.input.messages`` and
``gen_ai.output.messages``; the console renders it and the OTLP exporter sends it.

Pure functions over JSON text, no I/O. A value that is none of these shapes (or was cut at
``max_chars`` when recorded) gives None, and the caller shows the raw JSON instead.

>>> [m.role for m in input_messages('[[{"type":"system","content":"Be brief."},{"type":"human","content":"hi"}]]')]
['system', 'user']
>>> genai_json(output_messages('[[{"type":"ai","content":"hello"}]]'), output=True)
'[{"role":"assistant","parts":[{"type":"text","content":"hello"}],"finish_reason":"stop"}]'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChatMessage", "MessagePart", "as_messages", "genai_json", "input_messages", "output_messages"]

# LangChain message types and LlamaIndex roles -> the GenAI conventions' roles
_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant", "AIMessageChunk": "assistant",
          "chatbot": "assistant", "model": "assistant", "system": "system", "developer": "system",
          "tool": "tool", "function": "tool"}


@dataclass(frozen=True)
class MessagePart:
    """One part of a message: ``text`` (``content``), ``tool_call`` (``id``, ``name``,
    ``arguments``) or ``tool_call_response`` (``id``, ``content``: the tool's answer)."""

    type: str
    content: str | None = None
    id: str | None = None
    name: str | None = None
    arguments: Any = None


@dataclass(frozen=True)
class ChatMessage:
    """A chat message: a GenAI role (user, assistant, system, tool) and its parts."""

    role: str
    parts: tuple[MessagePart, ...] = field(default_factory=tuple)
    name: str | None = None


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _text_of(content: Any) -> list[MessagePart]:
    """Text parts of a content value: a string, or a list of content blocks (LangChain's
    ``{"type": "text", "text": ...}``, LlamaIndex's ``{"block_type": "text", ...}``)."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [MessagePart("text", content)]
    if isinstance(content, list):
        parts: list[MessagePart] = []
        for block in content:
            if isinstance(block, str):
                parts.append(MessagePart("text", block))
            elif isinstance(block, dict):
                kind = block.get("type") or block.get("block_type")
                if kind == "tool_call":
                    parts.append(MessagePart("tool_call", id=block.get("tool_call_id") or block.get("id"),
                                             name=block.get("tool_name") or block.get("name"),
                                             arguments=block.get("tool_kwargs", block.get("args"))))
                elif isinstance(block.get("text"), str):
                    parts.append(MessagePart("text", block["text"]))
                else:
                    parts.append(MessagePart("text", json.dumps(block, ensure_ascii=False)))
        return parts
    return [MessagePart("text", json.dumps(content, ensure_ascii=False))]


def _message(value: Any) -> ChatMessage | None:
    if isinstance(value, str):
        return ChatMessage("user", (MessagePart("text", value),))
    if not isinstance(value, dict):
        return None
    kind = value.get("type") or value.get("role")
    role = _ROLES.get(str(kind)) if kind is not None else None
    if role is None or not ("content" in value or "blocks" in value):
        return None
    extra: dict[str, Any] = value["additional_kwargs"] if isinstance(value.get("additional_kwargs"), dict) else {}
    call_id = value.get("tool_call_id") or extra.get("tool_call_id")
    body = value["content"] if "content" in value else value.get("blocks")
    parts = _text_of(body)
    if role == "tool":
        text = "".join(p.content or "" for p in parts if p.type == "text")
        parts = [MessagePart("tool_call_response", text, id=call_id)]
    for call in value.get("tool_calls") or extra.get("tool_calls") or ():
        if isinstance(call, dict):
            fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
            parts.append(MessagePart("tool_call", id=call.get("id"), name=call.get("name") or fn.get("name"),
                                     arguments=call.get("args", fn.get("arguments"))))
    return ChatMessage(role, tuple(parts), value.get("name") if isinstance(value.get("name"), str) else None)


def _messages(values: Any) -> list[ChatMessage] | None:
    if not isinstance(values, list):
        return None
    out = [_message(v) for v in values]
    return None if any(m is None for m in out) else [m for m in out if m is not None]


def as_messages(values: Any) -> list[ChatMessage] | None:
    """A decoded list of messages (a graph's ``messages`` channel as JSON values) read as
    chat messages; None unless every item is one."""
    if not isinstance(values, list) or not values or not all(isinstance(v, dict) for v in values):
        return None  # plain strings in a state are values, not prompts
    return _messages(values)


def input_messages(text: str | None) -> list[ChatMessage] | None:
    """The messages a model call was given, from its stored inputs (None: not a model call's)."""
    value = _loads(text)
    if isinstance(value, list) and value and isinstance(value[0], list):  # LangChain: one list per prompt
        return _messages(value[0])
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):  # text model prompts
        return [ChatMessage("user", (MessagePart("text", value[0]),))]
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            return _messages(value["messages"])
        if isinstance(value.get("prompt"), str):
            return [ChatMessage("user", (MessagePart("text", value["prompt"]),))]
    return None


def output_messages(text: str | None) -> list[ChatMessage] | None:
    """The messages a model call answered with, from its stored outputs."""
    value = _loads(text)
    if isinstance(value, list) and value and isinstance(value[0], list):
        first = value[0]
        if first and all(isinstance(v, str) for v in first):  # text generations
            return [ChatMessage("assistant", tuple(MessagePart("text", v) for v in first))]
        return _messages(first)
    if isinstance(value, dict):
        if isinstance(value.get("message"), dict):
            found = _message(value["message"])
            return [found] if found is not None else None
        if isinstance(value.get("text"), str):
            return [ChatMessage("assistant", (MessagePart("text", value["text"]),))]
    return None


def _part_json(part: MessagePart) -> dict[str, Any]:
    if part.type == "text":
        return {"type": "text", "content": part.content}
    if part.type == "tool_call":
        return {"type": "tool_call", "id": part.id, "name": part.name, "arguments": part.arguments}
    return {"type": "tool_call_response", "id": part.id, "response": part.content}


def genai_json(messages: list[ChatMessage] | None, *, output: bool = False) -> str | None:
    """``messages`` as the JSON string of ``gen_ai.input.messages`` (or, with ``output``,
    ``gen_ai.output.messages``, which also carries a ``finish_reason``)."""
    if messages is None:
        return None
    out: list[dict[str, Any]] = []
    for m in messages:
        entry: dict[str, Any] = {"role": m.role, "parts": [_part_json(p) for p in m.parts]}
        if m.name:
            entry["name"] = m.name
        if output:
            entry["finish_reason"] = "tool_call" if any(p.type == "tool_call" for p in m.parts) else "stop"
        out.append(entry)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))
