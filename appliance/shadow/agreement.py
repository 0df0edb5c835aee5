"""How far a shadowed candidate agrees with the active model, frame by frame and over a run.

Per task: classifiers (and raw models) agree when their top-1 class is the same; detectors are
matched box to box at IoU >= 0.5 with the same class (recall: share of the active model's boxes the
candidate found; precision: share of the candidate's boxes the active model has too; the run's
agreement is the lower of the two); segmentation compares foreground masks (mask IoU, mean over
frames). Two empty answers agree fully.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.processing.inference import Detection, Inference

MATCH_IOU = 0.5
LATENCY_SAMPLES = 1000


@dataclass(frozen=True)
class Compared:
    """One frame compared: its agreement (0..1), and the box counts behind it for a detector."""

    agreement: float
    matched: int = 0
    active_boxes: int = 0
    candidate_boxes: int = 0


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(active: Sequence[Detection], candidate: Sequence[Detection]) -> int:
    """Greedy one-to-one matching, best IoU first: how many pairs of the same class reach MATCH_IOU."""
    pairs = sorted(
        (
            (box_iou(a.box, c.box), i, j)
            for i, a in enumerate(active)
            for j, c in enumerate(candidate)
            if a.label_id == c.label_id
        ),
        reverse=True,
    )
    used_a: set[int] = set()
    used_c: set[int] = set()
    for iou, i, j in pairs:
        if iou < MATCH_IOU:
            break
        if i not in used_a and j not in used_c:
            used_a.add(i)
            used_c.add(j)
    return len(used_a)


def mask_iou(active: np.ndarray | None, candidate: np.ndarray | None) -> float:
    """IoU of two boolean masks (resized to the active one's shape when they differ)."""
    a = active if active is not None else np.zeros((1, 1), bool)
    c = candidate if candidate is not None else np.zeros_like(a)
    if c.shape != a.shape:
        ys = (np.arange(a.shape[0]) * c.shape[0] // a.shape[0]).clip(0, c.shape[0] - 1)
        xs = (np.arange(a.shape[1]) * c.shape[1] // a.shape[1]).clip(0, c.shape[1] - 1)
        c = c[ys][:, xs]
    union = int(np.logical_or(a, c).sum())
    return 1.0 if union == 0 else int(np.logical_and(a, c).sum()) / union


def compare_labels(active_id: int | None, candidate_id: int | None) -> Compared:
    return Compared(1.0 if active_id == candidate_id else 0.0)


def compare_boxes(active: Sequence[Detection], candidate: Sequence[Detection]) -> Compared:
    matched = match_boxes(active, candidate)
    most = max(len(active), len(candidate))
    return Compared(1.0 if most == 0 else matched / most, matched, len(active), len(candidate))


def compare(
    task: str, active: Inference, candidate: Inference, masks: tuple[Any, Any] = (None, None)
) -> Compared:
    """One frame: the active model's answer against the candidate's (masks for segmentation)."""
    if task == "detect":
        return compare_boxes(active.detections, candidate.detections)
    if task == "segment":
        return Compared(mask_iou(masks[0], masks[1]))
    return compare_labels(active.label_id, candidate.label_id)


def percentiles(samples: Sequence[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(np.asarray(samples, np.float64), [50, 95])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}


class Agreement:
    """Running totals of one shadow run; thread-safe (the shadow thread adds, readers snapshot)."""

    def __init__(self, task: str) -> None:
        self.task = task
        self._lock = threading.Lock()
        self.compared = 0
        self.disagreed = 0
        self.dropped = 0  # offered while the shadow was still busy with the previous frame
        self.failed = 0  # frames the candidate could not run on
        self.skipped = 0  # not offered: not an Nth result, or the pipeline was busy
        self._sum = 0.0
        self._boxes = [0, 0, 0]  # matched, active, candidate
        self._active_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._candidate_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def add(self, compared: Compared, active_ms: float, candidate_ms: float, disagrees: bool) -> None:
        with self._lock:
            self.compared += 1
            self.disagreed += int(disagrees)
            self._sum += compared.agreement
            self._boxes[0] += compared.matched
            self._boxes[1] += compared.active_boxes
            self._boxes[2] += compared.candidate_boxes
            self._active_ms.append(active_ms)
            self._candidate_ms.append(candidate_ms)

    def drop(self) -> None:
        with self._lock:
            self.dropped += 1

    def skip(self) -> None:
        with self._lock:
            self.skipped += 1

    def fail(self) -> None:
        with self._lock:
            self.failed += 1

    def agreement(self) -> float | None:
        """The run's figure promotion is judged by (None before the first frame)."""
        with self._lock:
            return self._agreement()

    def _agreement(self) -> float | None:
        if self.compared == 0:
            return None
        if self.task != "detect":
            return self._sum / self.compared
        recall, precision = self._detector()
        return min(recall, precision)

    def _detector(self) -> tuple[float, float]:
        matched, active, candidate = self._boxes
        recall = matched / active if active else (1.0 if candidate == 0 else 0.0)
        precision = matched / candidate if candidate else (1.0 if active == 0 else 0.0)
        return recall, precision

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            agreement = self._agreement()
            out: dict[str, Any] = {
                "task": self.task,
                "metric": METRICS.get(self.task, METRICS["classify"]),
                "agreement": None if agreement is None else round(agreement, 5),
                "frames": {
                    "compared": self.compared,
                    "disagreed": self.disagreed,
                    "dropped": self.dropped,
                    "failed": self.failed,
                    "skipped": self.skipped,
                },
                "latency_ms": {
                    "active": percentiles(self._active_ms),
                    "candidate": percentiles(self._candidate_ms),
                },
            }
            if self.task == "detect":
                recall, precision = self._detector()
                matched, active, candidate = self._boxes
                out["boxes"] = {
                    "matched": matched,
                    "active": active,
                    "candidate": candidate,
                    "recall": round(recall, 5),
                    "precision": round(precision, 5),
                }
            return out


METRICS = {
    "classify": "top-1 agreement",
    "raw": "top-1 agreement",
    "detect": "min(box recall, box precision) at IoU 0.5",
    "segment": "mean mask IoU",
}
