"""Dashboard figures over a time window: runs, errors, tokens, cost and latency per time
bucket, per model and per graph (the root span's name).

The SQL trace store reads three narrow row sets (the window's roots; its model calls; the
model calls' tokens and cost grouped by bucket and graph) and :func:`build_stats` folds them
here, so the percentiles are exact (no sketch) and every backend gives the same figures.
A cost is None (unknown) wherever a model call counted in it has no known price.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Bucket", "Group", "Stats", "build_stats", "parse_span", "percentile"]

_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_span(text: str) -> int:
    """A window length such as ``90m``, ``24h`` or ``7d``, in nanoseconds.

    >>> parse_span("2h") // 10**9
    7200
    """
    from sutram_core.errors import ConfigurationError

    number, unit = text[:-1], text[-1:].lower()
    if unit not in _UNITS or not number.isdigit() or int(number) < 1:
        raise ConfigurationError(f"window {text!r}: give a whole number of minutes, hours or days, e.g. 90m, 24h, 7d")
    return int(number) * _UNITS[unit] * 10**9


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Bucket:
    """One time slice of the window: ``start_ns`` up to the next bucket's."""

    start_ns: int
    runs: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None


@dataclass
class Group:
    """The figures of one model (its calls) or one graph (its runs)."""

    key: str
    count: int = 0  # model calls, or runs
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0


@dataclass
class Stats:
    """A tenant's figures between ``since_ns`` and ``until_ns`` (run start times)."""

    tenant: str
    since_ns: int
    until_ns: int
    bucket_ns: int
    buckets: list[Bucket] = field(default_factory=list)
    models: list[Group] = field(default_factory=list)
    graphs: list[Group] = field(default_factory=list)
    total: Group = field(default_factory=lambda: Group("all"))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("models", "graphs"):
            for g, d in zip(getattr(self, name), out[name], strict=True):
                d["error_rate"] = g.error_rate
        out["total"]["error_rate"] = self.total.error_rate
        return out


def _add_cost(total: float | None, cost: float | None) -> float | None:
    return None if total is None or cost is None else total + cost


def build_stats(
    tenant: str, since_ns: int, until_ns: int, buckets: int,
    roots: Iterable[tuple[str, int, int | None, str]],
    calls: Iterable[tuple[str, int, int | None, str, int, int, float | None, str]],
) -> Stats:
    """Fold ``roots`` (graph name, start, end, status) and model ``calls`` (model, start,
    end, status, input tokens, output tokens, cost, the run's graph name) of the runs
    started in the window."""
    width = max(1, -(-(until_ns - since_ns) // max(1, buckets)))
    stats = Stats(tenant, since_ns, until_ns, width, [Bucket(since_ns + i * width) for i in range(buckets)])
    graph_of: dict[str, Group] = {}
    bucket_latency: list[list[float]] = [[] for _ in range(buckets)]
    graph_latency: dict[str, list[float]] = {}
    all_latency: list[float] = []
    for name, start, end, status in roots:
        b = min(buckets - 1, (start - since_ns) // width)
        g = graph_of.setdefault(name, Group(name))
        for target in (stats.buckets[b], g, stats.total):
            if isinstance(target, Bucket):
                target.runs += 1
            else:
                target.count += 1
            target.errors += status == "error"
        if end is not None:
            ms = (end - start) / 1e6
            bucket_latency[b].append(ms)
            graph_latency.setdefault(name, []).append(ms)
            all_latency.append(ms)
    model_of: dict[str, Group] = {}
    model_latency: dict[str, list[float]] = {}
    for model, start, end, status, tokens_in, tokens_out, cost, graph in calls:
        b = min(buckets - 1, max(0, (start - since_ns) // width))
        m = model_of.setdefault(model, Group(model))
        m.count += 1
        m.errors += status == "error"
        for target in (stats.buckets[b], m, graph_of.setdefault(graph, Group(graph)), stats.total):
            target.input_tokens += tokens_in
            target.output_tokens += tokens_out
            target.cost_usd = _add_cost(target.cost_usd, cost)
        if end is not None:
            model_latency.setdefault(model, []).append((end - start) / 1e6)
    for i, lat in enumerate(bucket_latency):
        stats.buckets[i].p50_ms, stats.buckets[i].p95_ms = percentile(lat, .5), percentile(lat, .95)
    for key, g in graph_of.items():
        g.p50_ms, g.p95_ms = percentile(graph_latency.get(key, []), .5), percentile(graph_latency.get(key, []), .95)
    for key, m in model_of.items():
        m.p50_ms, m.p95_ms = percentile(model_latency.get(key, []), .5), percentile(model_latency.get(key, []), .95)
    stats.total.p50_ms, stats.total.p95_ms = percentile(all_latency, .5), percentile(all_latency, .95)
    stats.models = sorted(model_of.values(), key=lambda g: (-g.count, g.key))
    stats.graphs = sorted(graph_of.values(), key=lambda g: (-g.count, g.key))
    return stats
