"""Token usage and model names out of LlamaIndex responses (providers put them in
different places: ``raw.usage`` as a dict or an object, with OpenAI or Anthropic names,
or ``additional_kwargs``)."""

from __future__ import annotations

from typing import Any

__all__ = ["llm_usage"]


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def llm_usage(response: Any) -> tuple[int | None, int | None, int | None, str | None]:
    """(input tokens, output tokens, cached input tokens, response model) of a
    ``ChatResponse`` or ``CompletionResponse``; None where the provider said nothing."""
    raw = _get(response, "raw")
    usage = _get(raw, "usage") or _get(raw, "usage_metadata")
    extra = _get(response, "additional_kwargs") or {}
    source = usage if usage is not None else extra
    inp = _get(source, "prompt_tokens")
    if inp is None:
        inp = _get(source, "input_tokens")
    out = _get(source, "completion_tokens")
    if out is None:
        out = _get(source, "output_tokens")
    details = _get(source, "prompt_tokens_details")
    cached = _get(details, "cached_tokens") if details is not None else _get(source, "cache_read_input_tokens")
    model = _get(raw, "model")
    return (
        None if inp is None else int(inp),
        None if out is None else int(out),
        None if not cached else int(cached),
        None if model is None else str(model),
    )
