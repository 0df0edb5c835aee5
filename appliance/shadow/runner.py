"""Shadow runs: a candidate model beside the active one on live frames, never in its way.

The pipeline calls `observe(frame, result)` after publishing each result (Pipeline.add_observer).
It only offers the pair to a hand-off of size 1 with a non-blocking put: every Nth result
(model.shadow_every) or, with 0, whenever the pipeline's queues are empty; a pair offered while the
shadow is still busy is dropped and counted. The shadow thread runs the candidate on its own runtime
(one context of the configured backends: a spare NPU context, or CPU LiteRT with one thread), at a
lower CPU priority, compares it with the active result (agreement.py), and keeps
thumbnails of disagreeing frames (examples.py). For segmentation it also runs a private copy of the
active model, since results do not carry masks.

A run ends when it is stopped, replaced, when the candidate is promoted, or when any other model
becomes active (its statistics stay readable, state "stopped" with the reason). Requests from the
command line arrive through mailbox.py and are carried out here like API calls.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.config.sections import ModelConfig
from appliance.errors import ApplianceError, BadRequest, Conflict
from appliance.models.manifest import Manifest
from appliance.pipeline.proof import prove
from appliance.pipeline.results import Result
from appliance.pipeline.runtime import ModelManager, ModelRuntime, RuntimeOptions
from appliance.processing.inference import Inference
from appliance.shadow import mailbox
from appliance.shadow.agreement import Agreement, compare
from appliance.shadow.examples import Examples
from appliance.shadow.promotion import Decision, Evidence, Policy, record, shortfall
from appliance.sources.base import Frame

logger = logging.getLogger(__name__)

POLL_S = 0.25
STATUS_EVERY_S = 1.0
NICE = 10  # the shadow thread's CPU priority below the pipeline's


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Run:
    candidate: Manifest
    active: Manifest
    runtime: ModelRuntime
    reference: ModelRuntime | None  # the active model's private copy (segmentation only)
    stats: Agreement
    started: str = field(default_factory=_now)
    stopped: str | None = None
    reason: str | None = None
    last_error: str | None = None

    def evidence(self) -> Evidence:
        snap = self.stats.snapshot()
        return Evidence(
            self.candidate.ref, self.active.ref, snap["metric"], snap["agreement"], snap["frames"]["compared"]
        )


def _summary(inference: Inference | Result) -> dict[str, Any]:
    score = inference.score
    return {
        "label": inference.label,
        "score": None if score is None else round(score, 4),
        "count": inference.count,
    }


class ShadowRunner:
    def __init__(
        self,
        manager: ModelManager,
        folder: Path,
        settings: Callable[[], ModelConfig],
        queue_depths: Callable[[], dict[str, int]],
    ) -> None:
        self.manager = manager
        self.folder = folder
        self._settings = settings
        self._depths = queue_depths  # the pipeline's: all empty = its workers are idle
        self.examples = Examples(folder / "examples")
        self._handoff: queue.Queue[tuple[Frame, Result]] = queue.Queue(1)
        self._run: Run | None = None  # running
        self._last: Run | None = None  # the run that ended last
        self._lock = threading.Lock()  # start, stop, promote: one at a time
        self._swap = threading.Lock()  # taking the run's runtime vs. retiring it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._answers: dict[str, Any] = {}
        self._status_at = 0.0
        self._ticked = 0.0

    # the hook: called from the pipeline's publish stage, must never block
    def observe(self, frame: Frame, result: Result) -> None:
        run = self._run
        if run is None or (result.model, result.model_version) != (run.active.name, run.active.version):
            return
        every = self._settings().shadow_every
        if (every > 0 and result.seq % every) or (every == 0 and any(self._depths().values())):
            run.stats.skip()
            return
        try:
            self._handoff.put_nowait((frame, result))
        except queue.Full:
            run.stats.drop()

    def start_watching(self) -> None:
        self.examples.clear()  # thumbnails never outlive their run, nor a restart
        mailbox.discard(self.folder)
        self._thread = threading.Thread(target=self._loop, name="shadow", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux: per-thread priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        while not self._stop.is_set():
            try:
                frame, result = self._handoff.get(timeout=POLL_S)
            except queue.Empty:
                pass
            else:
                self._compare(frame, result)
            self._tick()

    def _tick(self) -> None:
        """Between frames, at most every POLL_S: requests from the command line, the active model
        changing, status.json."""
        if time.monotonic() - self._ticked < POLL_S:
            return
        self._ticked = time.monotonic()
        for request in mailbox.take(self.folder):
            self._answer(request)
        run, current = self._run, self.manager.current()
        if run is not None and (current is None or current.manifest.ref != run.active.ref):
            now = current.manifest.ref if current is not None else "no model"
            if now == run.candidate.ref:
                self._end(f"promoted: {now} is the active model")
            else:
                self._end(f"the active model changed to {now}: start a new shadow run against it")
        if time.monotonic() - self._status_at > STATUS_EVERY_S:
            self._publish_status()

    def _publish_status(self) -> None:
        self._status_at = time.monotonic()
        mailbox.write_status(self.folder, self.status(), self._answers)

    def _answer(self, request: dict[str, Any]) -> None:
        try:
            action = request.get("action")
            name, version = str(request.get("name") or ""), request.get("version")
            if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
                raise BadRequest("version: a whole number")
            if action == "start":
                self.start(name, version)
            elif action == "stop":
                self.stop()
            elif action == "promote":
                self.promote(name, version, bool(request.get("override")), str(request.get("by") or ""))
            else:
                raise BadRequest(f"unknown shadow request {action!r}")
            answer: dict[str, Any] = {"ok": True, "error": None, "code": 200}
        except ApplianceError as err:
            answer = {"ok": False, "error": str(err), "code": err.status}
        self._answers = {
            **dict(list(self._answers.items())[-(mailbox.ANSWERS_KEPT - 1) :]),
            request["id"]: answer,
        }
        self._publish_status()

    def _load(self, manifest: Manifest) -> ModelRuntime:
        """The shadow's own runtime: checksum, load, proven on the source's latest frame."""
        registry = self.manager.registry
        registry.verify(manifest)
        files = registry.files_of(manifest)
        options = RuntimeOptions(order=self.manager.options.order, threads=1, workers=1, ring=2)
        runtime = ModelRuntime(manifest, files, options, self.manager.backends)
        try:
            prove(runtime, self.manager.tap.sample())
        except ApplianceError:
            runtime.close()
            raise
        return runtime

    def start(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Shadow `name` (newest or `version`) against the active model; replaces a run going on."""
        with self._lock:
            candidate = self.manager.registry.get(name, version)
            current = self.manager.current()
            if current is None:
                raise Conflict("no active model to compare with: activate one first")
            active = current.manifest
            if candidate.ref == active.ref:
                raise Conflict(f"model {candidate.ref} is the active model: shadow another version or model")
            if candidate.task != active.task:
                raise Conflict(
                    f"model {candidate.ref} is a {candidate.task} model and the active {active.ref} a "
                    f"{active.task} model: a shadow run compares models of the same task"
                )
            runtime = self._load(candidate)
            try:
                reference = self._load(active) if active.task == "segment" else None
            except ApplianceError:
                runtime.close()
                raise
            self._end(f"replaced by a shadow run of {candidate.ref}")
            with self._swap:
                self._run = Run(candidate, active, runtime, reference, Agreement(active.task))
        logger.info("shadow run of %s against %s started on %s", candidate.ref, active.ref, runtime.backend)
        self._publish_status()
        return self.status()

    def stop(self) -> dict[str, Any]:
        with self._lock:
            if self._run is None:
                raise Conflict("no shadow run is going on")
            self._end("stopped by request")
        self._publish_status()
        return self.status()

    def _end(self, reason: str) -> None:
        with self._swap:
            run, self._run = self._run, None
            if run is None:
                return
            run.stopped, run.reason = _now(), reason
            run.runtime.retire()  # closed once the shadow thread lets go of it
            if run.reference is not None:
                run.reference.retire()
            self._last = run
            self.examples.clear()
        with contextlib.suppress(queue.Empty):
            self._handoff.get_nowait()
        logger.info("shadow run of %s ended: %s", run.candidate.ref, reason)

    def _take(self) -> tuple[Run, ModelRuntime, ModelRuntime | None] | None:
        with self._swap:
            run = self._run
            if run is None:
                return None
            return run, run.runtime.acquire(), run.reference.acquire() if run.reference else None

    def _compare(self, frame: Frame, result: Result) -> None:
        taken = self._take()
        if taken is None:
            return
        run, runtime, reference = taken
        try:
            t0 = time.perf_counter()
            candidate = _infer(runtime, frame)
            candidate_ms = (time.perf_counter() - t0) * 1e3
            masks = (None, None)
            if reference is not None:
                _infer(reference, frame)
                masks = (getattr(reference.post, "mask", None), getattr(runtime.post, "mask", None))
        except (ApplianceError, ValueError, IndexError) as err:
            run.stats.fail()
            run.last_error = f"the candidate failed on frame {result.seq}: {err}"
            return
        finally:
            runtime.release()
            if reference is not None:
                reference.release()
        active = Inference(
            result.label, result.label_id, result.score, result.count, result.detections, result.extra
        )
        compared = compare(run.active.task, active, candidate, masks)
        threshold = self._settings().shadow_min_agreement if run.active.task == "segment" else 1.0
        disagrees = compared.agreement < threshold
        run.stats.add(compared, result.timings.infer_ms, candidate_ms, disagrees)
        if not disagrees:
            return
        what = {
            "seq": result.seq,
            "ts": result.ts,
            "agreement": round(compared.agreement, 4),
            "active": _summary(result),
            "candidate": _summary(candidate),
        }
        with self._swap:  # never after its run ended (which cleared the examples)
            if self._run is run:
                self.examples.keep(frame.image, what, self._settings().shadow_examples)

    def _policy(self) -> Policy:
        settings = self._settings()
        return Policy(settings.shadow_min_agreement, settings.shadow_min_frames)

    def promote(self, name: str, version: int | None, override: bool, by: str) -> Manifest:
        """Activate the shadowed candidate if its run earned it (or on an override), recording how."""
        with self._lock:
            registry = self.manager.registry
            manifest = registry.get(name, version)
            current = self.manager.current()
            active = current.manifest.ref if current is not None else None
            run = self._run or self._last
            evidence = run.evidence() if run is not None else None
            promotion = record(evidence, manifest.ref, active, self._policy(), Decision(by, override))
            before = registry.record_promotion(manifest.name, manifest.version, promotion)
            try:
                self.manager.activate(manifest.name, manifest.version)
            except BaseException:
                registry.record_promotion(manifest.name, manifest.version, before.promotion)
                raise
            self._end(f"promoted: {manifest.ref} is the active model")
        logger.info("model %s promoted (%s)", manifest.ref, promotion)
        self._publish_status()
        return registry.get(manifest.name, manifest.version)

    def status(self) -> dict[str, Any]:
        run = self._run or self._last
        settings = self._settings()
        out: dict[str, Any] = {
            "state": "none" if run is None else ("running" if run is self._run else "stopped"),
            "mode": f"1 in {settings.shadow_every} results" if settings.shadow_every else "when idle",
            "min_agreement": settings.shadow_min_agreement,
            "min_frames": settings.shadow_min_frames,
            "examples": self.examples.listing(),
        }
        if run is None:
            return out
        current = self.manager.current()
        active = current.manifest.ref if current is not None else None
        out.update(
            candidate=run.candidate.ref,
            active=run.active.ref,
            backend=run.runtime.backend,
            started=run.started,
            stopped=run.stopped,
            reason=run.reason,
            last_error=run.last_error,
            stats=run.stats.snapshot(),
            shortfall=shortfall(run.evidence(), run.candidate.ref, active, self._policy()),
        )
        return out

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            self._end("the appliance stopped")
        mailbox.write_status(self.folder, self.status(), self._answers)


def _infer(runtime: ModelRuntime, frame: Frame) -> Inference:
    inference, _ = runtime.infer(frame)
    return inference
