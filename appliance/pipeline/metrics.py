"""Per-stage counters and latency percentiles, cheap enough for the per-frame path."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

WINDOW = 1024  # latencies kept per stage for percentiles
HISTOGRAM_BOUNDS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass(frozen=True)
class StageSnapshot:
    name: str
    received: int
    processed: int
    dropped: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    histogram: tuple[int, ...]
    sum_ms: float = 0.0  # of every observed latency (the Prometheus histogram's _sum)

    def to_json(self) -> dict[str, object]:
        return {
            "in": self.received,
            "processed": self.processed,
            "dropped": self.dropped,
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }


class StageMetrics:
    def __init__(self, name: str) -> None:
        self.name = name
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.errors = 0
        self._latencies = np.zeros(WINDOW, np.float64)
        self._count = 0
        self._sum_ms = 0.0
        self._histogram = np.zeros(len(HISTOGRAM_BOUNDS_MS) + 1, np.int64)
        self._bounds = np.array(HISTOGRAM_BOUNDS_MS, np.float64)
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        ms = seconds * 1000.0
        with self._lock:
            self.processed += 1
            self._latencies[self._count % WINDOW] = ms
            self._count += 1
            self._sum_ms += ms
            self._histogram[int(np.searchsorted(self._bounds, ms))] += 1

    def snapshot(self) -> StageSnapshot:
        with self._lock:
            window = self._latencies[: min(self._count, WINDOW)].copy()
            histogram = tuple(int(v) for v in self._histogram)
            sum_ms = self._sum_ms
        p50 = p99 = None
        if window.size:
            p50, p99 = (round(float(v), 3) for v in np.percentile(window, [50, 99]))
        return StageSnapshot(
            self.name, self.received, self.processed, self.dropped, self.errors, p50, p99, histogram, sum_ms
        )
