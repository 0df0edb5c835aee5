"""The Result of one frame, its row in the store, and the bus that fans results out (store, PLC, live view).

`Result.from_inference` is the one constructor for a frame that ran through a model (pipeline, OneShot).
The mapping to and from a results.db row is derived from the column table (store/rows.py): a column's
`path` names the Result attribute it stores.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from appliance.models.manifest import Manifest
from appliance.processing.inference import Detection, Inference
from appliance.sources.base import Frame
from appliance.store import rows
from appliance.store.rows import Record

logger = logging.getLogger(__name__)

OBSERVER_QUEUE = 64  # (frame, result) pairs waiting for the observers; more are dropped


@dataclass(frozen=True)
class Timings:
    pre_ms: float
    infer_ms: float
    post_ms: float
    total_ms: float


@dataclass(frozen=True, slots=True)
class Origin:
    """What a result is of: its sequence number, its frame, whether it is stored, whether it keeps the
    frame's image (a snapshot, a live view watching)."""

    seq: int
    frame: Frame
    store: bool = True
    keep_image: bool = False


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

    @classmethod
    def from_inference(
        cls, origin: Origin, model: Manifest, backend: str, inference: Inference, timings: Timings
    ) -> Result:
        frame = origin.frame
        return cls(
            seq=origin.seq,
            frame_id=frame.frame_id,
            ts=frame.ts,
            source=frame.source,
            model=model.name,
            model_version=model.version,
            task=model.task,
            backend=backend,
            label=inference.label,
            label_id=inference.label_id,
            score=inference.score,
            count=inference.count,
            detections=inference.detections,
            extra=inference.extra,
            store=origin.store,
            timings=timings,
            image=frame.image if origin.keep_image else None,
        )

    def record(self, with_image: bool) -> Record:
        """The row to store (store/rows.py RECORD columns), with the frame if a snapshot is wanted."""
        values = tuple(rows.encode(c, _get(self, c.path or c.name)) for c in rows.RECORD)
        return Record(values, self.image if with_image else None)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Result:
        """A stored row (as SELECT * gives it) back as a Result (not to be stored again)."""
        shown = rows.from_row(row)
        timings = {c.path.split(".")[1]: shown[c.name] for c in rows.RECORD if c.path.startswith("timings.")}
        fields = {c.name: shown[c.name] for c in rows.RECORD if not c.path and c.name in _FIELDS}
        fields["detections"] = tuple(Detection.from_json(d) for d in shown["detections"])
        return cls(**fields, timings=Timings(**timings), store=False)

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


_FIELDS = frozenset(Result.__dataclass_fields__)


def _get(obj: object, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


Subscriber = Callable[[Result], None]


class RecordSink(Protocol):
    def submit(self, record: Record) -> None: ...


class Recorder:
    """Subscriber that stores results that ask to be stored; snapshots per mode: off, all, detections."""

    def __init__(self, writer: RecordSink, snapshots: str) -> None:
        self.writer = writer
        self.snapshots = snapshots

    def __call__(self, result: Result) -> None:
        if not result.store:
            return
        wanted = self.snapshots == "all" or (self.snapshots == "detections" and result.count > 0)
        self.writer.submit(result.record(wanted and result.image is not None))


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


Observer = Callable[[Frame, Result], None]


class Observers:
    """Callables that see each published (frame, result) pair, on a thread of their own: the post stage
    only hands the pair over (a bounded queue; when it is full the pair is dropped and counted), so an
    observer can never slow or stop publication. A failing observer is logged, never fatal."""

    def __init__(self, size: int = OBSERVER_QUEUE) -> None:
        self._observers: list[Observer] = []
        self._queue: queue.Queue[tuple[Frame, Result] | None] = queue.Queue(size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, observer: Observer) -> None:
        with self._lock:
            self._observers = [*self._observers, observer]
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pipeline-observers", daemon=True)
                self._thread.start()

    def notify(self, frame: Frame, result: Result) -> None:
        if not self._observers:
            return
        try:
            self._queue.put_nowait((frame, result))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (pair := self._queue.get()) is not None:
            for observer in self._observers:
                try:
                    observer(*pair)
                except Exception:
                    logger.exception("pipeline observer %r failed", observer)

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)
