"""What of a span's content is stored: the content switch, the redaction hook, the masker.

Applied on the tracer's writer thread, before anything reaches the database or an
exporter:

1. ``SUTRAM_TRACE_CONTENT=false`` (or ``content=False``) drops inputs, outputs and error
   messages; the span keeps its metadata (names, timings, tokens, cost, status).
2. The user's hook ``redact(value) -> value`` sees every captured input and output (as
   JSON-ready data) and returns what may be stored.
3. The built-in masker replaces API keys (OpenAI, Anthropic, Stripe, Hugging Face, AWS,
   Google, GitHub, GitLab, Slack, Langfuse, LangSmith), JWTs, private-key blocks, AWS
   secret keys where named, Slack webhooks, passwords in URLs, bearer tokens and e-mail
   addresses in every string with ``[REDACTED:<kind>]``.
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

__all__ = ["CONTENT_ATTRIBUTES", "DEFAULT_MAX_CHARS", "Redactor", "content_enabled", "mask_secrets", "to_jsonable"]

# span attributes that carry content (error text): dropped with the content, hooked, masked
CONTENT_ATTRIBUTES = frozenset({"sutram.retry.last_error", "exception.message", "exception.stacktrace",
                                "error.message"})

DEFAULT_MAX_CHARS = 16_384

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private_key", re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)",
        re.DOTALL,
    )),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    ("api_key", re.compile(
        r"\b(?:sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{20,}"  # OpenAI, Anthropic
        r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
        r"|whsec_[A-Za-z0-9]{24,}"  # Stripe webhook secret
        r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
        r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id (long-lived, temporary)
        r"|AIza[0-9A-Za-z_\-]{35}"  # Google
        r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,}"  # GitHub
        r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
        r"|xox[abposr]-[A-Za-z0-9\-]{10,}|xapp-[A-Za-z0-9\-]{10,}"  # Slack
        r"|(?:pk|sk)-lf-[A-Za-z0-9\-]{8,}"  # Langfuse
        r"|lsv2_[a-z]{2}_[A-Za-z0-9_]{20,})"  # LangSmith
    )),
    # AWS secret access keys have no prefix: masked where they are named
    ("aws_secret", re.compile(r"(?i)(?<=aws_secret_access_key)(\W{1,4})[A-Za-z0-9/+=]{40,}")),
    ("webhook", re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+")),
    ("credentials", re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)")),  # user:password@ in a URL
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{16,}=*")),
    ("email", re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")),
)


# Substring tests (fast, in C) that every match of each pattern contains: most texts
# contain none of them, and then no regular expression runs at all.
_HINTS: dict[str, tuple[str, ...]] = {
    "private_key": ("PRIVATE KEY",),
    "jwt": ("eyJ",),
    "api_key": ("sk-", "sk_", "rk_", "pk_", "whsec_", "hf_", "AKIA", "ASIA", "AIza", "ghp_", "gho_", "ghu_",
                "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "xapp-", "pk-lf-", "lsv2_"),
    "aws_secret": ("ws_secret_access_key", "WS_SECRET_ACCESS_KEY"),
    "webhook": ("hooks.slack.com",),
    "credentials": ("://",),
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
            text = pattern.sub(_REPLACEMENTS[kind], text)
    return text


# the AWS secret keeps the separator before it ("aws_secret_access_key=[REDACTED:aws_secret]")
_REPLACEMENTS: dict[str, Any] = {kind: f"[REDACTED:{kind}]" for kind, _ in _PATTERNS}
_REPLACEMENTS["aws_secret"] = lambda m: f"{m.group(1)}[REDACTED:aws_secret]"


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
    if "blocks" in fields and "tool_calls" not in out:
        # LlamaIndex keeps an assistant's tool calls as blocks, which ``content`` leaves out
        calls = [{"name": b.tool_name, "args": b.tool_kwargs, "id": b.tool_call_id} for b in fields["blocks"]
                 if getattr(b, "block_type", None) == "tool_call"]
        if calls:
            out["tool_calls"] = calls
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

    def attributes(self, attributes: Mapping[str, Any]) -> str:
        """A span's attributes as stored JSON: metadata masked; the ones that carry content
        (:data:`CONTENT_ATTRIBUTES`, error text) treated as error messages (dropped with the
        content, passed to the hook, masked)."""
        if not attributes:
            return "{}"
        if not CONTENT_ATTRIBUTES.isdisjoint(attributes):
            attributes = {k: (self.message(str(v)) if k in CONTENT_ATTRIBUTES else v) for k, v in attributes.items()}
            attributes = {k: v for k, v in attributes.items() if v is not None}
        return self.encode(attributes)

    def error(self, error: BaseException) -> str:
        """An exception as Sutram stores it anywhere (the run ledger, run memories): its type,
        and its message as :meth:`message` keeps it (nothing with the content off)."""
        text = self.message(str(error))
        return f"{type(error).__name__}: {text}" if text else type(error).__name__

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
