"""What the span detail panel shows of one stored span: its chat (a model call's messages in
and out), a tool's arguments and result, retrieved documents, its input and output otherwise,
every attribute, tokens and cost, and its error with the stack.

Values are prepared as text here and escaped by the template (Jinja autoescape): nothing a
prompt holds reaches the page as markup. Long values are folded by the template, never cut;
a value the tracer cut when recording (``max_chars``) says how much was not recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sutram_core.traces.messages import ChatMessage, input_messages, output_messages
from sutram_core.traces.spans import SpanKind
from sutram_core.traces.store import StoredSpan

__all__ = ["Document", "SpanDetail", "StoredValue", "pretty", "span_detail"]

# attributes the panel shows in a section of their own
_SHOWN_ELSEWHERE = frozenset({"exception.stacktrace"})


@dataclass(frozen=True)
class StoredValue:
    """A stored input or output as display text (``omitted``: characters the tracer did not record)."""

    text: str
    omitted: int = 0


@dataclass(frozen=True)
class Document:
    """A retrieved document: its text, score and metadata (as text)."""

    text: str
    score: float | None
    metadata: str | None


@dataclass
class SpanDetail:
    """One span, ready for the panel."""

    span: StoredSpan
    input_messages: list[ChatMessage] | None = None
    output_messages: list[ChatMessage] | None = None
    arguments: StoredValue | None = None  # a tool's
    result: StoredValue | None = None  # a tool's
    documents: list[Document] | None = None  # a retriever's
    input: StoredValue | None = None  # anything not shown above
    output: StoredValue | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)
    stack: str | None = None


def pretty(value: Any) -> str:
    """A value as display text: a string as it is, anything else as indented JSON."""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _stored(text: str | None) -> tuple[Any, int] | None:
    """The stored JSON decoded (undoing the tracer's cut marker), and the omitted characters."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text, 0
    if isinstance(value, dict) and set(value) == {"truncated", "omitted_chars"}:
        return str(value["truncated"]), int(value["omitted_chars"])
    return value, 0


def _value(text: str | None) -> StoredValue | None:
    found = _stored(text)
    return None if found is None else StoredValue(pretty(found[0]), found[1])


def _tool_result(text: str | None) -> StoredValue | None:
    """A tool's answer: the content of the tool message it returned, else the value."""
    found = _stored(text)
    if found is None:
        return None
    value, omitted = found
    if isinstance(value, dict):
        if value.get("type") == "tool" and "content" in value:
            value = value["content"]
        elif "raw_output" in value:  # LlamaIndex ToolOutput
            value = value["raw_output"]
    return StoredValue(pretty(value), omitted)


def _documents(text: str | None) -> list[Document] | None:
    found = _stored(text)
    if found is None or not isinstance(found[0], list):
        return None
    docs: list[Document] = []
    for item in found[0]:
        if not isinstance(item, dict):
            docs.append(Document(pretty(item), None, None))
            continue
        node: dict[str, Any] = item["node"] if isinstance(item.get("node"), dict) else item  # LlamaIndex NodeWithScore
        body = node.get("page_content", node.get("text"))
        score = item.get("score")
        meta = node.get("metadata")
        docs.append(Document(pretty(body if body is not None else item),
                             float(score) if isinstance(score, (int, float)) else None,
                             pretty(meta) if meta else None))
    return docs


def span_detail(span: StoredSpan) -> SpanDetail:
    """Prepare ``span`` for the panel."""
    detail = SpanDetail(span)
    if span.kind == SpanKind.LLM:
        detail.input_messages = input_messages(span.inputs)
        detail.output_messages = output_messages(span.outputs)
    elif span.kind == SpanKind.TOOL:
        detail.arguments = _value(span.inputs)
        detail.result = _tool_result(span.outputs)
    elif span.kind == SpanKind.RETRIEVER:
        detail.documents = _documents(span.outputs)
    if detail.input_messages is None and detail.arguments is None:
        detail.input = _value(span.inputs)
    if detail.output_messages is None and detail.result is None and detail.documents is None:
        detail.output = _value(span.outputs)
    attributes = span.otel_attributes()
    attributes.pop("sutram.input", None)
    attributes.pop("sutram.output", None)
    detail.stack = str(attributes["exception.stacktrace"]) if "exception.stacktrace" in attributes else None
    detail.attributes = sorted((k, v if isinstance(v, str) else json.dumps(v)) for k, v in attributes.items()
                               if k not in _SHOWN_ELSEWHERE)
    return detail
