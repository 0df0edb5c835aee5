"""The Result of one frame, and the bus that fans results out to subscribers (store, PLC, live view)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from appliance.processing.inference import Detection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timings:
    pre_ms: float
    infer_ms: float
    post_ms: float
    total_ms: float


@dataclass(frozen=True)
class Result:
    seq: int
    frame_id: int
    ts: float
    source: str
    model: str
    model_version: int
    task: str
    backend: str
    label: str | None
    label_id: int | None
    score: float | None
    count: int
    detections: tuple[Detection, ...]
    timings: Timings
    extra: dict[str, Any] = field(default_factory=dict)
    store: bool = True
    verdict: dict[str, Any] | None = None  # the inspection job's verdict (JobVerdict.to_json()), if any
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        t = self.timings
        return {
            "seq": self.seq,
            "frame_id": self.frame_id,
            "ts": round(self.ts, 6),
            "time": datetime.fromtimestamp(self.ts, UTC).isoformat(timespec="milliseconds"),
            "source": self.source,
            "model": self.model,
            "model_version": self.model_version,
            "task": self.task,
            "backend": self.backend,
            "label": self.label,
            "label_id": self.label_id,
            "score": None if self.score is None else round(self.score, 5),
            "count": self.count,
            "detections": [d.to_json() for d in self.detections],
            "latency_ms": {
                "pre": round(t.pre_ms, 3),
                "infer": round(t.infer_ms, 3),
                "post": round(t.post_ms, 3),
                "total": round(t.total_ms, 3),
            },
            "extra": self.extra,
            "verdict": self.verdict,
        }


Subscriber = Callable[[Result], None]


class ResultBus:
    """Publishes each result to every subscriber; a failing subscriber is logged, never fatal."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._lock = threading.Lock()
        self.latest: Result | None = None

    def subscribe(self, name: str, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = [*self._subscribers, (name, subscriber)]

    def unsubscribe(self, name: str) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s[0] != name]

    def publish(self, result: Result) -> None:
        self.latest = result
        for name, subscriber in self._subscribers:
            try:
                subscriber(result)
            except Exception:
                logger.exception("result subscriber %s failed", name)
