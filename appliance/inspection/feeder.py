"""The result-bus subscriber that feeds the image archive and the hard-example dataset.

It never blocks the pipeline: a judged result (one with a job verdict and its frame) goes onto a
bounded queue, and a full queue drops it and counts the drop. `accept` picks which results count
(the appliance takes triggered parts only, unless archive.continuous). One worker thread archives the image
per the job's snapshot policy and keeps it as a hard example when the dataset's policy picks it.

`flag()` keeps an operator's "wrong" / "right" on a stored result: it flags the result's example, or
makes one from the result's stored snapshot.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.errors import ApplianceError, BadRequest, Conflict
from appliance.inspection.archive import Archive
from appliance.inspection.dataset import FLAGS, Dataset, Example, reason_for
from appliance.inspection.recipe import Job, SnapshotPolicy
from appliance.pipeline.results import Result, Timings
from appliance.processing.inference import Detection

logger = logging.getLogger(__name__)


class Feeder:
    """Subscriber (`__call__`) plus its worker; `close()` drains what was queued."""

    def __init__(
        self,
        archive: Archive | None,
        dataset: Dataset | None,
        active_job: Callable[[], Job | None],
        queue_size: int,
        accept: Callable[[Result], bool] = lambda _: True,
    ) -> None:
        self.archive, self.dataset = archive, dataset
        self.active_job = active_job
        self.accept = accept
        self.dropped = 0
        self.archived = 0
        self.examples = 0
        self.errors = 0
        self._queue: queue.Queue[Result | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="inspection-feeder", daemon=True)
        self._thread.start()

    def __call__(self, result: Result) -> None:
        if result.verdict is None or result.image is None or not self.accept(result):
            return
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (result := self._queue.get()) is not None:
            try:
                self._keep(result)
            except (ApplianceError, OSError, ValueError) as err:
                self.errors += 1
                logger.warning("archive/dataset: result %d not kept: %s", result.seq, err)

    def _policy(self, number: int) -> SnapshotPolicy:
        job = self.active_job()
        return job.snapshot if job is not None and job.number == number else SnapshotPolicy()

    def _keep(self, result: Result) -> None:
        verdict, image = result.verdict or {}, result.image
        assert image is not None
        ok, number = bool(verdict.get("ok")), int(verdict.get("job", 0))
        wanted = self.archive is not None and self.archive.wanted(ok, self._policy(number))
        if (
            wanted
            and self.archive is not None
            and self.archive.keep(image, number, ok, result.ts, result.seq)
        ):
            self.archived += 1
        if self.dataset is not None and image.ndim == 3:
            reason = reason_for(result, ok, self.dataset.policy)
            if reason is not None:
                self.dataset.add(image, result, reason, number)
                self.examples += 1

    def status(self) -> dict[str, Any]:
        archive, pusher = self.archive, self.archive.pusher if self.archive else None
        return {
            "queued": self._queue.qsize(),
            "dropped": self.dropped,
            "archived": self.archived,
            "examples": self.examples,
            "errors": self.errors,
            "archive_bytes": archive.used_bytes() if archive is not None else 0,
            "archive_quota_bytes": archive.quota_bytes if archive is not None else 0,
            "ftp": pusher.status() if pusher is not None else None,
        }

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)


def example_id(ts: float, seq: int) -> str:
    return f"{int(ts):010d}-{seq}"


def result_of_row(row: dict[str, Any]) -> Result:
    """A stored result row (store.rows.from_row) back as a Result, for its boxes."""
    detections = tuple(
        Detection(str(d["label"]), int(d.get("label_id", -1)), float(d["score"]), tuple(d["box"]))
        for d in row.get("detections") or []
        if len(d.get("box") or ()) == 4
    )
    timings = Timings(
        row["pre_ms"] or 0.0, row["infer_ms"] or 0.0, row["post_ms"] or 0.0, row["total_ms"] or 0.0
    )
    return Result(
        row["seq"], row["frame_id"], row["ts"], row["source"], row["model"], row["model_version"],
        row["task"], row["backend"] or "", row["label"], row["label_id"], row["score"], row["count"],
        detections, timings, verdict=row.get("verdict"),
    )  # fmt: skip


def flag(dataset: Dataset, row: dict[str, Any], snapshot: Path | None, value: str) -> Example:
    """Flag stored result `row` as `value` ("wrong"/"right"): its example, or one made from `snapshot`."""
    if value not in FLAGS:
        raise BadRequest(f"flag must be one of {', '.join(FLAGS)}, got {value!r}")
    wanted = example_id(row["ts"], row["seq"])
    if any(e.id == wanted for e in dataset.examples()):
        return dataset.flag(wanted, value)
    image: np.ndarray | None = cv2.imread(str(snapshot), cv2.IMREAD_COLOR) if snapshot is not None else None
    if image is None:
        raise Conflict(f"result {row['id']} has no kept image (no snapshot, no hard example) to flag")
    job = int((row.get("verdict") or {}).get("job", 0))
    return dataset.add(image, result_of_row(row), value, job)
