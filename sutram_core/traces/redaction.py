"""What of a span's content is stored: the content switch, the redaction hook, the masker.

Applied on the tracer's writer thread, before anything reaches the database or an
exporter:

1. ``SUTRAM_TRACE_CONTENT=false`` (or ``content=False``) drops inputs, outputs and error
   messages; the span keeps its metadata (names, timings, tokens, cost, status).
2. The user's hook ``redact(value) -> value`` sees every captured input and output (as
   JSON-ready data) and returns what may be stored.
3. The built-in masker replaces API keys, bearer tokens and e-mail addresses in every
   string with ``[REDACTED:<kind>]``.
4. The JSON text is capped at ``max_chars``; a longer value is cut and marked.

>>> Redactor().text({"key": "sk-proj-abcdefghijklmnopqrstuvwx", "to": "ann@example.com"})
'{"key":"[REDACTED:api_key]","to":"[REDACTED:email]"}'
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from sutram_core.errors import ConfigurationError

__all__ = ["DEFAULT_MAX_CHARS", "Redactor", "content_enabled", "mask_secrets", "to_jsonable"]

DEFAULT_MAX_CHARS = 16_384

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("api_key", re.compile(
        r"\b(?:sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{20,}"  # OpenAI, Anthropic
        r"|AKIA[0-9A-Z]{16}"  # AWS access key id
        r"|AIza[0-9A-Za-z_\-]{35}"  # Google
        r"|gh[pousr]_[A-Za-z0-9]{36,}"  # GitHub
        r"|xox[abpr]-[A-Za-z0-9\-]{10,}"  # Slack
        r"|(?:pk|sk)-lf-[A-Za-z0-9\-]{8,}"  # Langfuse
        r"|lsv2_[a-z]{2}_[A-Za-z0-9_]{20,})"  # LangSmith
    )),
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{16,}=*")),
    ("email", re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")),
)


# Substring tests (fast, in C) that every match of each pattern contains: most texts
# contain none of them, and then no regular expression runs at all.
_HINTS: dict[str, tuple[str, ...]] = {
    "api_key": ("sk-", "AKIA", "AIza", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "pk-lf-", "lsv2_"),
    "bearer": ("earer", "EARER"),
    "email": ("@",),
}


_ANY_HINT = re.compile("|".join(re.escape(h) for hints in _HINTS.values() for h in hints))


def mask_secrets(text: str) -> str:
    """Replace API keys, bearer tokens and e-mail addresses in ``text``."""
    if _ANY_HINT.search(text) is None:
        return text
    for kind, pattern in _PATTERNS:
        if any(hint in text for hint in _HINTS[kind]):
            text = pattern.sub(f"[REDACTED:{kind}]", text)
    return text


def content_enabled(value: bool | None = None) -> bool:
    """``value`` if given, else ``SUTRAM_TRACE_CONTENT`` (default true)."""
    if value is not None:
        return value
    raw = os.environ.get("SUTRAM_TRACE_CONTENT", "true").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"SUTRAM_TRACE_CONTENT={raw!r}: use true or false")


def to_jsonable(value: Any, depth: int = 0) -> Any:
    """Turn framework objects into JSON-ready data (what the redaction hook sees): the
    same conversion, object by object, as the stored JSON (see :func:`_default`)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 20:
        return "…"
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v, depth + 1) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    return to_jsonable(_default(value), depth + 1)


def _message(value: Any) -> dict[str, Any] | None:
    """A chat message (LangChain or LlamaIndex) as the compact dict a trace shows."""
    # read the instance dict: probing a pydantic model for an attribute it lacks goes
    # through its __getattr__ and an exception, which costs more than the whole dump
    fields = getattr(value, "__dict__", None)
    if not fields:
        return None
    kind = fields.get("type") or fields.get("role")
    if kind is None or not ("content" in fields or "blocks" in fields):
        return None
    out: dict[str, Any] = {"type": str(getattr(kind, "value", kind)),
                           "content": fields["content"] if "content" in fields else value.content}
    for extra in ("name", "tool_calls", "tool_call_id"):
        field = fields.get(extra)
        if field:
            out[extra] = field
    return out


def _default(value: Any) -> Any:
    """One object that orjson cannot serialize natively, as JSON-ready data (maybe nested):
    a chat message compactly, a pydantic model by ``model_dump``, numpy by ``tolist``,
    anything else by its type name. Never raises."""
    message = _message(value)
    if message is not None:
        return message
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump()
        except Exception:  # a model that cannot dump itself is shown by its type
            return f"<{type(value).__qualname__}>"
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return tolist()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, BaseException):
        return f"{type(value).__qualname__}: {value}"
    return f"<{type(value).__qualname__}>"


def _mask_tree(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {k: _mask_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_tree(v) for v in value]
    return value


_OPTIONS = orjson.OPT_NON_STR_KEYS


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS).decode()
    except (TypeError, orjson.JSONEncodeError):  # too deep, or a model that cannot dump itself
        return json.dumps(to_jsonable(value), ensure_ascii=False, default=str)


class Redactor:
    """Decides and produces the stored text of span content (see the module docstring)."""

    def __init__(
        self,
        *,
        content: bool | None = None,
        redact: Callable[[Any], Any] | None = None,
        mask: bool = True,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if max_chars < 64:
            raise ConfigurationError(f"max_chars={max_chars}: keep at least 64 characters")
        self.content = content_enabled(content)
        self.redact = redact
        self.mask = mask
        self.max_chars = max_chars

    def text(self, value: Any) -> str | None:
        """The JSON text stored for ``value``, or None when content is not kept."""
        if not self.content or value is None:
            return None
        if self.redact is not None:
            value = self.redact(to_jsonable(value))
        out = self.encode(value)
        if len(out) > self.max_chars:
            cut = len(out) - self.max_chars
            out = _dumps({"truncated": out[: self.max_chars], "omitted_chars": cut})
        return out

    def encode(self, value: Any) -> str:
        """``value`` as JSON text, masked; for metadata, which is kept without content too."""
        out = _dumps(value)
        if self.mask and mask_secrets(out) != out:
            # found something: mask string by string (masking the JSON text itself could
            # cut an escape sequence such as the "\\n" in front of an address)
            out = _dumps(_mask_tree(to_jsonable(value)))
        return out

    def message(self, message: str | None) -> str | None:
        """An error message as stored: dropped with the content, else hooked and masked."""
        if message is None or not self.content:
            return None
        if self.redact is not None:
            hooked = self.redact(message)
            message = hooked if isinstance(hooked, str) else _dumps(hooked)
        if self.mask:
            message = mask_secrets(message)
        return message[: self.max_chars]
