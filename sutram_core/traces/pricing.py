"""Cost in USD of a model call, from a shipped, versioned price table the user can extend.

>>> prices = PriceTable.default()
>>> prices.register("my-finetune", input=1.0, output=2.0)   # USD per 1M tokens
>>> prices.cost("my-finetune", input_tokens=1_000_000, output_tokens=0)
1.0

Model names match exactly, then without a ``provider/`` prefix, then by the longest known
name that the model name starts with followed by ``-`` (so ``gpt-4o-2024-08-06`` is priced
as ``gpt-4o`` and ``gpt-4o-mini-2024-07-18`` as ``gpt-4o-mini``). An unknown model has no
cost (``None``), never a guessed one.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sutram_core.errors import ConfigurationError

__all__ = ["ModelPrice", "PriceTable"]

_PER = 1_000_000


@dataclass(frozen=True)
class ModelPrice:
    """USD per one million tokens."""

    input: float
    output: float
    cache_read: float | None = None  # None: cached input tokens cost as much as others


class PriceTable:
    """Model prices; :meth:`default` loads the shipped table (and ``SUTRAM_PRICES``)."""

    def __init__(self, prices: dict[str, ModelPrice] | None = None, version: str = "custom") -> None:
        self.version = version
        self._prices: dict[str, ModelPrice] = dict(prices or {})
        self._resolved: dict[str, ModelPrice | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> PriceTable:
        """The table shipped with this Sutram, extended by the file ``SUTRAM_PRICES`` names."""
        text = resources.files("sutram_core.traces").joinpath("prices.json").read_text("utf-8")
        table = cls.from_json(text)
        extra = os.environ.get("SUTRAM_PRICES")
        if extra:
            table.update(cls.from_json(Path(extra).read_text("utf-8")))
        return table

    @classmethod
    def from_json(cls, text: str) -> PriceTable:
        """Parse a table in the shipped format: ``{"version": ..., "models": {name: {...}}}``."""
        try:
            doc = json.loads(text)
            models = {
                name: ModelPrice(float(p["input"]), float(p["output"]),
                                 None if p.get("cache_read") is None else float(p["cache_read"]))
                for name, p in doc["models"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"cannot read the price table ({exc!r}); expected JSON like "
                '{"version": "2026-01-01", "models": {"gpt-4o": {"input": 2.5, "output": 10}}}'
            ) from exc
        return cls(models, str(doc.get("version", "custom")))

    def register(self, model: str, *, input: float, output: float, cache_read: float | None = None) -> None:
        """Add or replace the price of ``model`` (USD per one million tokens)."""
        if min(input, output, cache_read or 0.0) < 0:
            raise ConfigurationError(f"prices cannot be negative (model {model!r})")
        with self._lock:
            self._prices[model] = ModelPrice(input, output, cache_read)
            self._resolved.clear()

    def update(self, other: PriceTable) -> None:
        """Take every price of ``other``, overriding this table's."""
        with self._lock:
            self._prices.update(other._prices)
            self._resolved.clear()
            self.version = f"{self.version}+{other.version}"

    def price(self, model: str) -> ModelPrice | None:
        """The price that applies to ``model``, or None when it is unknown."""
        try:
            return self._resolved[model]
        except KeyError:
            pass
        found = self._lookup(model)
        with self._lock:
            self._resolved[model] = found
        return found

    def _lookup(self, model: str) -> ModelPrice | None:
        name = model.strip().lower()
        for candidate in (name, name.rsplit("/", 1)[-1]):
            if candidate in self._prices:
                return self._prices[candidate]
        name = name.rsplit("/", 1)[-1]
        best = max(
            (k for k in self._prices if name.startswith(k + "-") or name.startswith(k + "@")),
            key=len,
            default=None,
        )
        return None if best is None else self._prices[best]

    def cost(
        self, model: str | None, *, input_tokens: int | None, output_tokens: int | None,
        cache_read_tokens: int | None = None,
    ) -> float | None:
        """USD for one call. ``input_tokens`` includes the cached ones, as providers count them."""
        if not model or (input_tokens is None and output_tokens is None):
            return None
        p = self.price(model)
        if p is None:
            return None
        cached = min(cache_read_tokens or 0, input_tokens or 0)
        cached_rate = p.input if p.cache_read is None else p.cache_read
        total = ((input_tokens or 0) - cached) * p.input + cached * cached_rate + (output_tokens or 0) * p.output
        return total / _PER

    def as_dict(self) -> dict[str, Any]:
        """The table in its JSON form."""
        return {"version": self.version, "models": {k: vars(v) for k, v in sorted(self._prices.items())}}
