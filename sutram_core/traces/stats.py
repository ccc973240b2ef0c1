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

__all__ = ["Bucket", "Group", "Stats", "bucket_width", "build_stats", "parse_span", "percentile"]

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
    return _ranked(sorted(values), q)


def _ranked(ordered: list[float], q: float) -> float | None:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else None


def _p50_p95(values: list[float]) -> tuple[float | None, float | None]:
    """The median and the 95th percentile, sorting ``values`` once."""
    ordered = sorted(values)
    return _ranked(ordered, .5), _ranked(ordered, .95)


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
    roots: Iterable[tuple[str, str, int, int | None, bool]],
    calls: Iterable[tuple[str, str, int, int | None, bool, int, int, float | None]],
) -> Stats:
    """Fold ``roots`` (run id, graph name, bucket, duration in ns or None, failed) of the
    runs started in the window and model ``calls`` (run id, model, bucket, duration,
    failed, input tokens, output tokens, cost) made in it. A call counts toward its run's
    graph when the run started in the window. Buckets are ``(start - since) // width``,
    computed by the query (see :func:`bucket_width`)."""
    width = bucket_width(since_ns, until_ns, buckets)
    stats = Stats(tenant, since_ns, until_ns, width, [Bucket(since_ns + i * width) for i in range(buckets)])
    last = buckets - 1
    graph_of: dict[str, Group] = {}
    graph_by_run: dict[str, Group] = {}
    bucket_latency: list[list[float]] = [[] for _ in range(buckets)]
    graph_latency: dict[str, list[float]] = {}
    total = stats.total
    for run_id, name, b, dur, failed in roots:
        b = min(max(b, 0), last)
        bucket = stats.buckets[b]
        g = graph_of.get(name)
        if g is None:
            g = graph_of[name] = Group(name)
            graph_latency[name] = []
        graph_by_run[run_id] = g
        bucket.runs += 1
        g.count += 1
        if failed:
            bucket.errors += 1
            g.errors += 1
        if dur is not None:
            ms = dur / 1e6
            bucket_latency[b].append(ms)
            graph_latency[name].append(ms)
    total.count = sum(g.count for g in graph_of.values())
    total.errors = sum(g.errors for g in graph_of.values())
    model_of: dict[str, Group] = {}
    model_latency: dict[str, list[float]] = {}
    for run_id, model, b, dur, failed, tokens_in, tokens_out, cost in calls:
        m = model_of.get(model)
        if m is None:
            m = model_of[model] = Group(model)
            model_latency[model] = []
        m.count += 1
        m.errors += failed
        bucket = stats.buckets[min(max(b, 0), last)]
        g = graph_by_run.get(run_id)
        for target in (bucket, m, total) if g is None else (bucket, m, g, total):
            target.input_tokens += tokens_in
            target.output_tokens += tokens_out
            target.cost_usd = _add_cost(target.cost_usd, cost)
        if dur is not None:
            model_latency[model].append(dur / 1e6)
    for i, lat in enumerate(bucket_latency):
        stats.buckets[i].p50_ms, stats.buckets[i].p95_ms = _p50_p95(lat)
    for key, g in graph_of.items():
        g.p50_ms, g.p95_ms = _p50_p95(graph_latency[key])
    for key, m in model_of.items():
        m.p50_ms, m.p95_ms = _p50_p95(model_latency[key])
    total.p50_ms, total.p95_ms = _p50_p95([ms for lat in graph_latency.values() for ms in lat])
    stats.models = sorted(model_of.values(), key=lambda g: (-g.count, g.key))
    stats.graphs = sorted(graph_of.values(), key=lambda g: (-g.count, g.key))
    return stats


def bucket_width(since_ns: int, until_ns: int, buckets: int) -> int:
    """The nanoseconds one of ``buckets`` covers (the last may end past ``until_ns``)."""
    return max(1, -(-(until_ns - since_ns) // max(1, buckets)))
