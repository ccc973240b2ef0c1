"""Inline SVG bar charts for the stats page: no script, no library, no network.

Each chart is a list of bars, one per time bucket, each bar one or two stacked segments
(ok and failed runs, input and output tokens) or two overlaid ones (p95 behind p50). The
geometry is computed here; the template only draws rectangles with a ``<title>`` each, so
a screen reader and a mouse both get every bar's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sutram_core.traces.stats import Stats

__all__ = ["Bar", "Chart", "Segment", "charts"]

WIDTH, HEIGHT = 720, 140  # the plot area, in SVG units


@dataclass(frozen=True)
class Segment:
    y: float
    height: float
    css: str


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    segments: tuple[Segment, ...]
    title: str


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    total: str  # the figure the chart sums to (or, for latency, the window's own)
    peak: str  # the value of the y axis' top
    legend: tuple[tuple[str, str], ...]  # (css class, label)
    bars: tuple[Bar, ...]
    first: str
    last: str


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%m-%d %H:%M")


def _chart(cid: str, title: str, total: str, stats: Stats, series: list[tuple[float, ...]],
           css: tuple[str, ...], labels: tuple[str, ...], fmt: str, overlay: bool = False) -> Chart:
    peak = max((max(v) if overlay else sum(v)) for v in series) if series else 0.0
    scale = HEIGHT / peak if peak else 0.0
    step = WIDTH / max(1, len(series))
    bars = []
    for i, values in enumerate(series):
        segments, base = [], float(HEIGHT)
        for value, cls in zip(values, css, strict=True):
            h = value * scale
            if overlay:
                segments.append(Segment(HEIGHT - h, h, cls))
            else:
                base -= h
                segments.append(Segment(base, h, cls))
        start = stats.buckets[i].start_ns
        figures = ", ".join(f"{label} {fmt.format(v)}" for label, v in zip(labels, values, strict=True))
        bars.append(Bar(i * step + step * .1, step * .8, tuple(segments), f"{_when(start)} UTC: {figures}"))
    return Chart(cid, title, total, fmt.format(peak), tuple(zip(css, labels, strict=True)), tuple(bars),
                 _when(stats.since_ns), _when(stats.until_ns))


def charts(stats: Stats) -> list[Chart]:
    """Runs (ok / failed), tokens (in / out), cost and latency (p50 over p95) per bucket."""
    b, t = stats.buckets, stats.total
    cost = "unknown" if t.cost_usd is None else f"${t.cost_usd:.6f}"
    return [
        _chart("chart-runs", "Runs", f"{t.count} runs, {t.errors} failed ({t.error_rate:.1%})", stats,
               [(x.runs - x.errors, x.errors) for x in b], ("ok", "failed"), ("ok", "failed"), "{:.0f}"),
        _chart("chart-tokens", "Tokens", f"{t.input_tokens + t.output_tokens} tokens", stats,
               [(x.input_tokens, x.output_tokens) for x in b], ("tokens-in", "tokens-out"), ("in", "out"), "{:.0f}"),
        _chart("chart-cost", "Cost (USD)", cost, stats, [(x.cost_usd or 0.0,) for x in b], ("cost",),
               ("known cost",), "{:.6f}"),
        _chart("chart-latency", "Run latency (ms)", "p50 " + ("-" if t.p50_ms is None else f"{t.p50_ms:.1f}")
               + " · p95 " + ("-" if t.p95_ms is None else f"{t.p95_ms:.1f}"), stats,
               [(x.p95_ms or 0.0, x.p50_ms or 0.0) for x in b], ("p95", "p50"), ("p95", "p50"), "{:.1f}",
               overlay=True),
    ]
