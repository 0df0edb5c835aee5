"""Inspections: the pass/fail verdict of a result, and triggers (run the next frame now and answer).

With an active inspection job (appliance/inspection/activation.py) a result carries the job's
per-region `verdict`, and that decides OK/NG; without one, the global [inspection] rule does. Every
trigger is counted in the production counters (ok, ng, error, processing time) under the job it ran.

A trigger in `continuous` mode answers with the next result the source produces; in `triggered`
mode the pipeline does not run frames by itself and a trigger takes the source's newest frame and
runs it. With an image (REST upload) the image is run instead. Triggered results are always stored.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.config import InspectionConfig
from appliance.errors import ApplianceError, NoSource, SourceError, TriggerTimeout
from appliance.inspection.activation import JobSwitch
from appliance.inspection.counters import Counters
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


def verdict_fields(verdict: dict[str, Any] | None) -> dict[str, Any]:
    """The job verdict part of the flat result: job 0 and empty lists when no job judged it."""
    v = verdict or {}
    return {
        "job": v.get("job", 0),
        "job_version": v.get("job_version", 0),
        "pass_bits": v.get("pass_bits", 0),
        "reason_code": v.get("reason_code", 0),
        "ng_region": v.get("ng_region", 0),
        "reasons": v.get("reasons", []),
        "regions": v.get("regions", []),
    }


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
        **verdict_fields(r.verdict),
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

    def __init__(
        self,
        bus: ResultBus,
        rule: InspectionConfig,
        counters: Counters | None = None,
        switch: JobSwitch | None = None,
    ) -> None:
        self.bus = bus
        self.rule = rule
        self.counters = counters
        self.switch = switch
        self.triggers = 0
        self._lock = threading.Lock()

    def judge(self, result: Result) -> bool:
        """OK or NG: the job's verdict when a job judged the result, else the global rule."""
        if result.verdict is not None:
            return bool(result.verdict.get("ok"))
        return passes(result, self.rule)

    def job(self) -> int:
        """The active job's number (0: none)."""
        return self.switch.number() if self.switch is not None else 0

    def trigger(self, pipeline: Pipeline, image: np.ndarray | None = None) -> TriggerOutcome:
        """Run one inspection and wait for it (at most rule.trigger_timeout_s)."""
        with self._lock:
            self.triggers += 1
        timeout = self.rule.trigger_timeout_s
        job = self.job()
        gate = self.switch.gate.trigger(timeout) if self.switch is not None else contextlib.nullcontext()
        try:
            with gate:
                future = self._start(pipeline, image, timeout)
                try:
                    result = future.result(timeout=timeout)
                except TimeoutError as err:
                    raise TriggerTimeout(f"no result within {timeout} s") from err
        except ApplianceError:
            self._count(job, "error")
            raise
        ok = self.judge(result)
        self._count(
            int((result.verdict or {}).get("job", job)), "ok" if ok else "ng", result.timings.total_ms
        )
        return TriggerOutcome(result, ok)

    def missed(self) -> None:
        """A trigger refused because an inspection was still running (PLC, serial)."""
        if self.counters is not None:
            self.counters.missed(self.job())

    def _count(self, job: int, outcome: str, time_ms: float | None = None) -> None:
        if self.counters is not None:
            self.counters.record(job, outcome, time_ms)

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
