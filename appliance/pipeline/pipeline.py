"""The pipeline: capture -> preprocess -> infer (N workers, one context each) -> postprocess -> publish.

Stages are threads joined by bounded queues. Frames from the source and jobs submitted through the API
share one sequence; the postprocess stage publishes results in sequence order, so several inference
workers never reorder a source's results. Every job reaches the postprocess stage, errors included,
so the order never stalls.

One Pipeline lives as long as the process: `set_source()` swaps the source in place (only the capture
thread restarts; queued frames finish) and the model is switched by its ModelManager; the sequence
(pipeline.sequence) never goes back, across source changes and restarts.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.errors import ApplianceError, Busy, InferenceFailed, NoActiveModel, SourceError
from appliance.pipeline.faults import FaultLog
from appliance.pipeline.metrics import StageMetrics
from appliance.pipeline.results import Result, ResultBus, Timings
from appliance.pipeline.runtime import ModelManager, ModelRuntime
from appliance.pipeline.sequence import Sequence
from appliance.processing.inference import Inference, Transform
from appliance.sources.base import Frame, FrameCounter, Source

logger = logging.getLogger(__name__)

POLL_S = 0.2
STAGES = ("capture", "preprocess", "infer", "postprocess")
Observer = Callable[[Frame, Result], None]


@dataclass(frozen=True)
class PipelineOptions:
    queue_size: int = 4
    workers: int = 1
    snapshot_every: int = 0
    triggered: bool = False  # run source frames only when triggered


@dataclass(eq=False)
class Job:
    seq: int
    frame: Frame
    store: bool = True
    future: Future[Result] | None = None
    runtime: ModelRuntime | None = None
    tensor: np.ndarray | None = None
    transform: Transform | None = None
    outputs: list[np.ndarray] = field(default_factory=list)
    backend: str = ""
    started: float = 0.0
    times: list[float] = field(default_factory=list)
    error: ApplianceError | None = None
    result: Result | None = None


class Pipeline:
    def __init__(
        self,
        manager: ModelManager,
        bus: ResultBus,
        options: PipelineOptions,
        source: Source | None = None,
        sequence: Sequence | None = None,
    ) -> None:
        self.manager = manager
        self.bus = bus
        self.options = options
        self.source = source
        self.tap = manager.tap  # the newest source frame, for proving a model before a switch
        self.tap.reset(source.kind if source is not None else None)
        self.faults = FaultLog()
        self.metrics = {name: StageMetrics(name) for name in STAGES}
        size = options.queue_size
        self._pre: queue.Queue[Job | None] = queue.Queue(size)
        self._infer: queue.Queue[Job | None] = queue.Queue(size)
        self._post: queue.Queue[Job | None] = queue.Queue(size)
        self.sequence = sequence or Sequence()
        self._seq_lock = threading.Lock()
        self._next_publish = self.sequence.first
        self._held: dict[int, Job] = {}
        self._stop = threading.Event()
        self._capture_stop = threading.Event()
        self._capture: threading.Thread | None = None
        self._source_lock = threading.Lock()  # one source change at a time
        self._threads: list[threading.Thread] = []
        self._infer_running = options.workers
        self._published = FrameCounter()
        self.image_watchers = 0  # live views watching: results then carry their frame
        self.source_error: str | None = None  # why the configured source did not open at start
        self._observers: tuple[Observer, ...] = ()

    def add_observer(self, observer: Observer) -> None:
        """Call `observer(frame, result)` after each result is published (the shadow run's tap).
        It runs on the publish stage: it must not block (a non-blocking put, at most)."""
        self._observers = (*self._observers, observer)

    def queue_depths(self) -> dict[str, int]:
        return {
            "preprocess": self._pre.qsize(),
            "infer": self._infer.qsize(),
            "postprocess": self._post.qsize(),
        }

    def _next_seq(self) -> int:
        return self.sequence.next()

    def start(self) -> None:
        plan: list[tuple[str, Any]] = [
            ("preprocess", self._preprocess_loop),
            ("postprocess", self._post_loop),
        ]
        plan += [(f"infer-{i}", lambda i=i: self._infer_loop(i)) for i in range(self.options.workers)]
        if self.source is not None:
            try:
                self.source.start()
            except SourceError as err:  # the appliance stays up so the source can be fixed from the UI
                logger.error("source %s cannot open: %s; running without a source", self.source.name, err)
                self.source, self.source_error = None, str(err)
                self.tap.reset(None)
        for name, target in plan:
            thread = threading.Thread(target=target, name=f"pipeline-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._start_capture()

    def _start_capture(self) -> None:
        if self.source is None or self.options.triggered or self._stop.is_set():
            return
        self._capture_stop = threading.Event()
        args = (self.source, self._capture_stop)
        self._capture = threading.Thread(
            target=self._capture_loop, args=args, name="pipeline-capture", daemon=True
        )
        self._capture.start()

    def _stop_capture(self) -> None:
        self._capture_stop.set()
        if self._capture is not None:
            self._capture.join(timeout=10)
            self._capture = None

    def set_source(self, source: Source | None, triggered: bool) -> None:
        """Switch to `source` (not yet started) in place. It is started first: if it cannot open
        (SourceError), nothing changed. Frames already queued finish; the sequence goes on."""
        with self._source_lock:
            if source is not None:
                source.start()
            self._stop_capture()
            old, self.source = self.source, source
            self.source_error = None
            self.options = dataclasses.replace(self.options, triggered=triggered)
            self.tap.reset(source.kind if source is not None else None)
            self.faults.clear()
            if old is not None:
                old.stop()
            self._start_capture()
        logger.info("source is now %s", f"{source.name} ({source.kind})" if source is not None else "none")

    def set_snapshot_every(self, every: int) -> None:
        self.options = dataclasses.replace(self.options, snapshot_every=every)

    def read_source(self, timeout: float) -> Frame | None:
        """The source's next frame (triggered mode), recorded as the newest frame it gave."""
        source = self.source
        frame = source.read(timeout) if source is not None else None
        if frame is not None:
            self.tap.saw(frame)
        return frame

    def stop(self) -> None:
        """Stop capturing, let queued work finish, then stop the stages."""
        self._stop.set()
        self._stop_capture()
        if self.source is not None:
            self.source.stop()
        self._pre.put(None)  # each stage passes the end marker on once it has drained
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def submit(self, frame: Frame, store: bool, timeout: float) -> Future[Result]:
        """Queue one frame from the API; its future resolves to the Result (or the error)."""
        future: Future[Result] = Future()
        job = Job(self._next_seq(), frame, store, future)
        job.started = time.perf_counter()
        self.metrics["capture"].received += 1
        try:
            self._pre.put(job, timeout=timeout)
        except queue.Full:
            # the sequence number is taken: pass the job on as an error so the order does not stall
            job.error = Busy("pipeline is busy: try again")
            self._post.put(job)
        return future

    def _capture_loop(self, source: Source, stop: threading.Event) -> None:
        stage = self.metrics["capture"]
        while not stop.is_set():
            frame = source.read(POLL_S)
            if frame is None:
                if source.ended:
                    break
                continue
            self.tap.saw(frame)
            stage.received += 1
            job = Job(self._next_seq(), frame)
            job.started = time.perf_counter()
            self._queue(job, stop)
            stage.observe(time.perf_counter() - job.started)

    def _queue(self, job: Job, stop: threading.Event) -> None:
        """Queue a frame that has its seq: once numbered it must reach the postprocess stage, or the
        results after it would wait for it forever. When capture stops, it goes on as an error."""
        while not stop.is_set():
            try:
                self._pre.put(job, timeout=POLL_S)
                return
            except queue.Full:
                continue
        job.error = Busy("capture stopped")
        self._post.put(job)

    def _preprocess_loop(self) -> None:
        stage = self.metrics["preprocess"]
        while (job := self._pre.get()) is not None:
            stage.received += 1
            t0 = time.perf_counter()
            if job.error is None:
                job.runtime = self.manager.acquire()
                try:
                    if job.runtime is None:
                        raise NoActiveModel(
                            "no active model: add one with `appliance models add` and activate it"
                        )
                    job.tensor, job.transform = job.runtime.preprocess(job.frame.image, job.frame.tensor)
                except ApplianceError as err:
                    job.error = err
                    stage.errors += 1
            job.times.append(time.perf_counter() - t0)
            stage.observe(job.times[-1])
            self._infer.put(job)
        for _ in range(self.options.workers):
            self._infer.put(None)

    def _infer_loop(self, worker: int) -> None:
        stage = self.metrics["infer"]
        while (job := self._infer.get()) is not None:
            stage.received += 1
            t0 = time.perf_counter()
            if job.error is None and job.runtime is not None and job.tensor is not None:
                try:
                    job.outputs, job.backend = job.runtime.run(worker, job.tensor)
                except ApplianceError as err:
                    job.error = err
                    stage.errors += 1
            job.times.append(time.perf_counter() - t0)
            stage.observe(job.times[-1])
            self._post.put(job)
        with self._seq_lock:
            self._infer_running -= 1
            last = self._infer_running == 0
        if last:
            self._post.put(None)

    def _post_loop(self) -> None:
        stage = self.metrics["postprocess"]
        while (job := self._post.get()) is not None:
            stage.received += 1
            t0 = time.perf_counter()
            job.result = self._finish(job)
            job.times.append(time.perf_counter() - t0)
            stage.observe(job.times[-1])
            if job.result is None:
                stage.errors += 1
            self._held[job.seq] = job
            self._publish_ready()

    def _finish(self, job: Job) -> Result | None:
        runtime = job.runtime
        try:
            if job.error is not None or runtime is None or job.transform is None:
                return None
            try:
                inference = runtime.postprocess(job.outputs, job.transform)
            except (ValueError, IndexError) as err:
                job.error = InferenceFailed(f"post-processing failed: {err}")
                return None
            return self._result(job, runtime, inference)
        finally:
            if runtime is not None:
                runtime.release()
                job.runtime = None

    def _result(self, job: Job, runtime: ModelRuntime, inference: Inference) -> Result:
        pre, infer = job.times[0], job.times[1]
        total = time.perf_counter() - job.started
        post = total - pre - infer
        every = self.options.snapshot_every
        keep_image = self.image_watchers > 0 or (every and job.seq % every == 0)
        manifest = runtime.manifest
        return Result(
            seq=job.seq,
            frame_id=job.frame.frame_id,
            ts=job.frame.ts,
            source=job.frame.source,
            model=manifest.name,
            model_version=manifest.version,
            task=manifest.task,
            backend=job.backend,
            label=inference.label,
            label_id=inference.label_id,
            score=inference.score,
            count=inference.count,
            detections=inference.detections,
            extra=inference.extra,
            store=job.store,
            timings=Timings(pre * 1e3, infer * 1e3, max(post, 0.0) * 1e3, total * 1e3),
            image=job.frame.image if keep_image else None,
        )

    def _publish_ready(self) -> None:
        while self._next_publish in self._held:
            job = self._held.pop(self._next_publish)
            result = job.result
            self._next_publish += 1
            if result is not None:
                self._published.frame()
                self.bus.publish(result)
                for observer in self._observers:
                    try:
                        observer(job.frame, result)
                    except Exception:  # an observer never stops the pipeline
                        logger.exception("result observer failed")
            if job.future is not None:
                if result is not None:
                    job.future.set_result(result)
                else:
                    job.future.set_exception(job.error or InferenceFailed("inference failed"))
            elif result is None and not isinstance(job.error, Busy):  # Busy: capture stopped mid-switch
                self.faults.failed(str(job.error or "inference failed"))
            else:
                self.faults.succeeded()

    def alive(self) -> bool:
        """Every stage thread still running (the capture thread may end with a finite source)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    @property
    def capturing(self) -> bool:
        """True when source frames flow by themselves (continuous mode)."""
        return self.source is not None and not self.options.triggered

    @property
    def published(self) -> int:
        return self._published.frames

    def results_fps(self) -> float:
        return self._published.fps()

    def status(self) -> dict[str, Any]:
        return {
            "stages": {name: m.snapshot().to_json() for name, m in self.metrics.items()},
            "queues": self.queue_depths(),
            "workers": self.options.workers,
            "next_seq": self.sequence.peek(),
            "source_error": self.source_error,
            "frames": self.faults.status(),
        }
