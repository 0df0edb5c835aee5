"""Server-rendered SVG charts: the geometry is computed here, `_chart.html` draws it.

Two kinds: a grouped bar histogram (latency per pipeline stage) and a bar time series (results per
interval, with the part that had detections). Sizes are in SVG user units; the SVG scales to its box.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 540, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 10, 10, 34
NICE_STEPS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
SERIES_CLASSES = ("s0", "s1", "s2", "s3")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    css: str
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # SVG text-anchor: start, middle or end


@dataclass(frozen=True)
class Chart:
    title: str
    bars: tuple[Bar, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    legend: tuple[tuple[str, str], ...]  # (css class, text)
    width: int = WIDTH
    height: int = HEIGHT
    empty: str = ""  # shown instead of bars when there is nothing to draw

    @property
    def plot(self) -> tuple[int, int, int, int]:
        return LEFT, TOP, self.width - LEFT - RIGHT, self.height - TOP - BOTTOM


def _y_ticks(peak: float, unit: str = "") -> tuple[Tick, ...]:
    plot_h = HEIGHT - TOP - BOTTOM
    steps = (0.0, 0.5, 1.0)
    return tuple(Tick(LEFT - 6, TOP + plot_h * (1 - s), f"{peak * s:g}{unit}", "end") for s in steps)


def _nice_peak(values: Sequence[float]) -> float:
    """A round number a little above the largest value (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times 10^k)."""
    target = max(max(values, default=0.0) * 1.05, 2.0)
    scale = 10.0 ** math.floor(math.log10(target))
    return next(step * scale for step in NICE_STEPS if step * scale >= target)


def histogram(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]]) -> Chart:
    """Grouped bars: one group per bucket label, one bar per series (as a share of its total, %)."""
    shares = {
        name: [100.0 * v / sum(values) if sum(values) else 0.0 for v in values]
        for name, values in series.items()
    }
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(len(labels), 1)
    bar_w = group_w * 0.8 / max(len(shares), 1)
    peak = min(100.0, _nice_peak([v for vs in shares.values() for v in vs]))
    bars = []
    for s, (name, values) in enumerate(shares.items()):
        counts = series[name]
        for i, share in enumerate(values):
            h = plot_h * share / peak
            x = LEFT + i * group_w + group_w * 0.1 + s * bar_w
            bound = labels[i] if labels[i].startswith(">") else "≤" + labels[i]
            tip = f"{name} {bound} ms: {counts[i]} frames ({share:.0f} %)"
            bars.append(
                Bar(round(x, 1), round(TOP + plot_h - h, 1), round(bar_w, 1), round(h, 1), _css(s), tip)
            )
    ticks = tuple(Tick(LEFT + (i + 0.5) * group_w, HEIGHT - BOTTOM + 16, t) for i, t in enumerate(labels))
    legend = tuple((_css(s), name) for s, name in enumerate(series))
    empty = "" if any(sum(v) for v in series.values()) else "No frames measured yet."
    return Chart(title, tuple(bars), ticks, _y_ticks(peak, " %"), legend, empty=empty)


def timeline(title: str, counts: Sequence[tuple[int, int]], bucket_s: float) -> Chart:
    """Bars per interval, oldest left: all results, and over them the ones with detections."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(counts), 1)
    peak = _nice_peak([float(total) for total, _ in counts])
    bars = []
    for i, (total, hits) in enumerate(counts):
        age = (len(counts) - i) * bucket_s
        for value, css, what in ((total, _css(0), "results"), (hits, _css(1), "with detections")):
            h = plot_h * value / peak
            tip = f"{value} {what}, {age:.0f} s ago"
            bars.append(
                Bar(
                    round(LEFT + i * slot + 1, 1),
                    round(TOP + plot_h - h, 1),
                    round(slot - 2, 1),
                    round(h, 1),
                    css,
                    tip,
                )
            )
    span = len(counts) * bucket_s
    marks = (0.0, 0.5, 1.0)
    anchors = ("start", "middle", "end")
    ticks = tuple(
        Tick(LEFT + plot_w * m, HEIGHT - BOTTOM + 16, _ago(span * (1 - m)), a)
        for m, a in zip(marks, anchors, strict=True)
    )
    legend = ((_css(0), "results"), (_css(1), "with detections"))
    empty = "" if any(total for total, _ in counts) else "No results stored in this period."
    return Chart(title, tuple(bars), ticks, _y_ticks(peak), legend, empty=empty)


def _ago(seconds: float) -> str:
    if seconds <= 0:
        return "now"
    return f"-{seconds / 60:.0f} min" if seconds >= 120 else f"-{seconds:.0f} s"


def _css(index: int) -> str:
    return SERIES_CLASSES[index % len(SERIES_CLASSES)]
