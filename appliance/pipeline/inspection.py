"""Inspections: the pass/fail verdict of a result, and triggers (run the next frame now and answer).

A trigger in `continuous` mode answers with the next result the source produces; in `triggered`
mode the pipeline does not run frames by itself and a trigger takes the source's newest frame and
runs it. With an image (REST upload) the image is run instead. Triggered results are always stored.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.config import InspectionConfig
from appliance.errors import NoSource, SourceError, TriggerTimeout
from appliance.pipeline.pipeline import Pipeline
from appliance.pipeline.results import Result, ResultBus
from appliance.sources.base import Frame


def passes(result: Result, rule: InspectionConfig) -> bool:
    """True when the result meets every condition of the rule."""
    if rule.pass_labels and result.label not in rule.pass_labels:
        return False
    if not rule.min_count <= result.count <= rule.max_count:
        return False
    return (result.score or 0.0) >= rule.min_score


def flat_result(result: Result, ok: bool) -> dict[str, Any]:
    """The PLC-facing form of a result (REST trigger, MQTT, webhooks): flat, fixed names, numbers."""
    r = result
    return {
        "seq": r.seq,
        "ok": ok,
        "label": r.label or "",
        "label_id": -1 if r.label_id is None else r.label_id,
        "score": round(r.score or 0.0, 4),
        "count": r.count,
        "latency_ms": round(r.timings.total_ms, 3),
        "model": r.model,
        "model_version": r.model_version,
        "backend": r.backend,
        "ts": round(r.ts, 3),
        "source": r.source,
        "error_code": 0,
        "detections": [d.to_json() for d in r.detections],
    }


@dataclass(frozen=True)
class TriggerOutcome:
    result: Result
    ok: bool


class NextResult:
    """Resolves a future with the next result the bus publishes from a given source."""

    def __init__(self, bus: ResultBus, source: str) -> None:
        self.future: Future[Result] = Future()
        self._bus, self._source = bus, source
        self._name = f"trigger-{id(self)}"
        bus.subscribe(self._name, self)

    def __call__(self, result: Result) -> None:
        if result.source == self._source and not self.future.done():
            self.future.set_result(result)
            self._bus.unsubscribe(self._name)

    def cancel(self) -> None:
        self._bus.unsubscribe(self._name)


class Inspector:
    """Fires triggers and judges results; thread-safe, called from HTTP, Modbus and serial handlers."""

    def __init__(self, bus: ResultBus, rule: InspectionConfig) -> None:
        self.bus = bus
        self.rule = rule
        self.triggers = 0
        self._lock = threading.Lock()

    def trigger(self, pipeline: Pipeline, image: np.ndarray | None = None) -> TriggerOutcome:
        """Run one inspection and wait for it (at most rule.trigger_timeout_s)."""
        with self._lock:
            self.triggers += 1
        timeout = self.rule.trigger_timeout_s
        future = self._start(pipeline, image, timeout)
        try:
            result = future.result(timeout=timeout)
        except TimeoutError as err:
            raise TriggerTimeout(f"no result within {timeout} s") from err
        return TriggerOutcome(result, passes(result, self.rule))

    def _start(self, pipeline: Pipeline, image: np.ndarray | None, timeout: float) -> Future[Result]:
        if image is not None:
            return pipeline.submit(Frame(0, time.time(), "trigger", image=image), store=True, timeout=timeout)
        source = pipeline.source
        if source is None:
            raise NoSource("no source configured: post an image with the trigger")
        if pipeline.capturing:
            waiter = NextResult(self.bus, source.name)
            return waiter.future
        frame = pipeline.read_source(timeout)
        if frame is None:
            raise SourceError(
                f"source {source.name} gave no frame within {timeout} s ({source.status().state})"
            )
        return pipeline.submit(frame, store=True, timeout=timeout)
