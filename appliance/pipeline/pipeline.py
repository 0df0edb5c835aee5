"""The pipeline: capture -> preprocess (P threads) -> infer (N workers, one context each) -> postprocess.

Stages are threads joined by bounded queues and pass frozen messages: `Entry` (a numbered frame),
`Ready` (its model input), `Ran` (the model's outputs) or `Failed` (an error, from any stage, sent
straight to the postprocess stage). Frames from the source and from the API share one sequence, handed
out as they enter (`Intake`); the postprocess stage publishes results in sequence order, so several
preprocess threads and inference workers never reorder a source's results. Every numbered frame reaches
the postprocess stage, errors included, so the order never stalls.

The model's work is one object, `ModelRuntime` (pipeline/runtime.py): one call per stage. One Pipeline
lives as long as the process: `set_source()` swaps the source in place (only the capture thread
restarts; queued frames finish) and the model is switched by its ModelManager; the sequence
(pipeline/sequence.py) never goes back, across source changes and restarts.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from appliance.errors import ApplianceError, Busy, InferenceFailed, NoActiveModel, SourceError
from appliance.pipeline.faults import FaultLog
from appliance.pipeline.metrics import StageMetrics
from appliance.pipeline.results import Observer, Observers, Origin, Result, ResultBus, Timings
from appliance.pipeline.runtime import ModelManager, ModelRuntime
from appliance.pipeline.sequence import Intake, Sequence
from appliance.processing.image import Prepared
from appliance.sources.base import Frame, FrameCounter, Source

logger = logging.getLogger(__name__)

POLL_S = 0.2
STAGES = ("capture", "preprocess", "infer", "postprocess")


class Judge(Protocol):
    """The inspection job's verdict on each result, given its frame (inspection/activation.py)."""

    def judge(self, result: Result, image: np.ndarray | None) -> Result: ...
    def wants_image(self) -> bool: ...  # a job is active: frames are decoded whole for it


@dataclass(frozen=True)
class PipelineOptions:
    queue_size: int = 4
    workers: int = 1
    snapshot_every: int = 0
    triggered: bool = False  # run source frames only when triggered
    preprocess_threads: int = 0  # 0: one per inference worker


@dataclass(frozen=True, slots=True)
class Entry:
    """capture/submit -> preprocess: a numbered frame."""

    origin: Origin
    started: float
    future: Future[Result] | None = None


@dataclass(frozen=True, slots=True)
class Ready:
    """preprocess -> infer: the model input, on the runtime that made it (held until postprocess)."""

    entry: Entry
    runtime: ModelRuntime
    prepared: Prepared
    pre_s: float


@dataclass(frozen=True, slots=True)
class Ran:
    """infer -> postprocess: the model's outputs."""

    ready: Ready
    outputs: list[np.ndarray]
    backend: str
    infer_s: float


@dataclass(frozen=True, slots=True)
class Failed:
    """any stage -> postprocess: why this frame has no result (the runtime it held, to release)."""

    entry: Entry
    error: ApplianceError
    runtime: ModelRuntime | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """What the postprocess stage holds until the frame's turn to be published."""

    entry: Entry
    result: Result | None
    error: ApplianceError | None


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
        self.sequence = sequence or Sequence()
        self._intake: Intake[Entry] = Intake(self.sequence, options.queue_size)
        self._infer: queue.Queue[Ready | None] = queue.Queue(options.queue_size)
        self._post: queue.Queue[Ran | Failed | None] = queue.Queue(options.queue_size)
        self._next_publish = self.sequence.first
        self._held: dict[int, Done] = {}
        self._count_lock = threading.Lock()
        self._pre_threads = options.preprocess_threads or options.workers
        self._pre_running = self._pre_threads
        self._infer_running = options.workers
        self._stop = threading.Event()
        self._capture_stop = threading.Event()
        self._capture: threading.Thread | None = None
        self._source_lock = threading.Lock()  # one source change at a time
        self._threads: list[threading.Thread] = []
        self._published = FrameCounter()
        self.observers = Observers()
        self.image_watchers = 0  # live views watching: results then carry their frame
        self.source_error: str | None = None  # why the configured source did not open at start
        self.judge: Judge | None = None  # the inspection job's verdict on each result (its frame given)

    def queue_depths(self) -> dict[str, int]:
        return {
            "preprocess": self._intake.qsize(),
            "infer": self._infer.qsize(),
            "postprocess": self._post.qsize(),
        }

    def start(self) -> None:
        plan: list[tuple[str, Callable[[], None]]] = [("postprocess", self._post_loop)]
        plan += [(f"preprocess-{i}", self._preprocess_loop) for i in range(self._pre_threads)]
        plan += [(f"infer-{i}", functools.partial(self._infer_loop, i)) for i in range(self.options.workers)]
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

    def add_observer(self, observer: Observer) -> None:
        """`observer(frame, result)` for every published result, on the observers' own thread (never
        blocking publication: pairs it cannot take in time are dropped and counted)."""
        self.observers.add(observer)

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
        self._intake.close()  # each stage passes the end on once it has drained
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self.observers.stop()

    def _entry_maker(
        self, frame: Frame, store: bool, future: Future[Result] | None
    ) -> Callable[[int], Entry]:
        def make(seq: int) -> Entry:
            every = self.options.snapshot_every
            judged = self.judge is not None and self.judge.wants_image()
            keep = self.image_watchers > 0 or judged or bool(every and seq % every == 0)
            return Entry(Origin(seq, frame, store, keep), time.perf_counter(), future)

        return make

    def submit(self, frame: Frame, store: bool, timeout: float) -> Future[Result]:
        """Queue one frame from the API, waiting up to `timeout` for room; its future resolves to the
        Result (or the error: Busy when there was no room)."""
        future: Future[Result] = Future()
        self.metrics["capture"].received += 1
        if self._intake.put(self._entry_maker(frame, store, future), timeout) is None:
            future.set_exception(Busy("pipeline is busy: try again"))
        return future

    def submit_nowait(self, frame: Frame, store: bool) -> Future[Result]:
        """Queue one frame without waiting (for the event loop); raises Busy when the pipeline is full.
        The future resolves to the Result or the error."""
        future: Future[Result] = Future()
        self.metrics["capture"].received += 1
        self._intake.put_nowait(self._entry_maker(frame, store, future))
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
            t0 = time.perf_counter()
            make = self._entry_maker(frame, True, None)
            while self._intake.put(make, POLL_S, stop) is None and not stop.is_set():
                pass  # a file source waits for room; a live one drops frames in its own slot meanwhile
            stage.observe(time.perf_counter() - t0)

    def _preprocess_loop(self) -> None:
        stage = self.metrics["preprocess"]
        while (entry := self._intake.get()) is not None:
            stage.received += 1
            t0 = time.perf_counter()
            message = self._prepare(entry, t0)
            stage.observe(time.perf_counter() - t0)
            if isinstance(message, Failed):
                stage.errors += 1
                self._post.put(message)
            else:
                self._infer.put(message)
        with self._count_lock:
            self._pre_running -= 1
            last = self._pre_running == 0
        if last:
            for _ in range(self.options.workers):
                self._infer.put(None)

    def _prepare(self, entry: Entry, t0: float) -> Ready | Failed:
        runtime = self.manager.acquire()
        if runtime is None:
            missing = NoActiveModel("no active model: add one with `appliance models add` and activate it")
            return Failed(entry, missing)
        try:
            prepared, frame = runtime.prepare(entry.origin.frame, entry.origin.keep_image)
        except ApplianceError as err:
            return Failed(entry, err, runtime)
        if frame is not entry.origin.frame:  # decoded at full size, to be kept with the result
            entry = dataclasses.replace(entry, origin=dataclasses.replace(entry.origin, frame=frame))
        return Ready(entry, runtime, prepared, time.perf_counter() - t0)

    def _infer_loop(self, worker: int) -> None:
        stage = self.metrics["infer"]
        while (ready := self._infer.get()) is not None:
            stage.received += 1
            t0 = time.perf_counter()
            message: Ran | Failed
            try:
                outputs, backend = ready.runtime.invoke(worker, ready.prepared)
                message = Ran(ready, outputs, backend, time.perf_counter() - t0)
            except ApplianceError as err:
                stage.errors += 1
                message = Failed(ready.entry, err, ready.runtime)
            stage.observe(time.perf_counter() - t0)
            self._post.put(message)
        with self._count_lock:
            self._infer_running -= 1
            last = self._infer_running == 0
        if last:
            self._post.put(None)

    def _post_loop(self) -> None:
        stage = self.metrics["postprocess"]
        while (message := self._post.get()) is not None:
            stage.received += 1
            t0 = time.perf_counter()
            done = self._finish(message)
            stage.observe(time.perf_counter() - t0)
            if done.result is None:
                stage.errors += 1
            self._held[done.entry.origin.seq] = done
            self._publish_ready()

    def _finish(self, message: Ran | Failed) -> Done:
        if isinstance(message, Failed):
            if message.runtime is not None:
                message.runtime.release()
            return Done(message.entry, None, message.error)
        ready = message.ready
        runtime = ready.runtime
        try:
            inference = runtime.finish(message.outputs, ready.prepared.transform)
        except (ValueError, IndexError) as err:
            return Done(ready.entry, None, InferenceFailed(f"post-processing failed: {err}"))
        except ApplianceError as err:
            return Done(ready.entry, None, err)
        finally:
            runtime.release()
        total = time.perf_counter() - ready.entry.started
        post = max(total - ready.pre_s - message.infer_s, 0.0)
        timings = Timings(ready.pre_s * 1e3, message.infer_s * 1e3, post * 1e3, total * 1e3)
        result = Result.from_inference(
            ready.entry.origin, runtime.manifest, message.backend, inference, timings
        )
        if self.judge is not None:
            try:
                result = self.judge.judge(result, ready.entry.origin.frame.image)
            except ApplianceError as err:
                return Done(ready.entry, None, err)
        return Done(ready.entry, result, None)

    def _publish_ready(self) -> None:
        while (done := self._held.pop(self._next_publish, None)) is not None:
            self._next_publish += 1
            self._publish(done)

    def _publish(self, done: Done) -> None:
        result, future = done.result, done.entry.future
        if result is not None:
            self._published.frame()
            self.bus.publish(result)
            self.observers.notify(done.entry.origin.frame, result)
        if future is not None:
            if result is not None:
                future.set_result(result)
            else:
                future.set_exception(done.error or InferenceFailed("inference failed"))
        elif result is None:
            self.faults.failed(str(done.error or "inference failed"))
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
            "preprocess_threads": self._pre_threads,
            "next_seq": self.sequence.peek(),
            "source_error": self.source_error,
            "frames": self.faults.status(),
            "observers_dropped": self.observers.dropped,
        }
