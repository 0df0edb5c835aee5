"""The verification report: the simulator's outputs against LiteRT's float outputs on the same inputs.

Per output: the largest absolute difference and the cosine similarity (the worst sample's); for
classifiers the share of samples whose top-1 class is the same; for detectors the share of boxes
that find a partner of the same class with IoU >= 0.5 (spurious and missed boxes both count against
it) and the mean IoU of the partners. Classes and boxes come from the appliance's own
post-processing, so the report judges what the appliance would report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.processing.inference import Detection, Inference, Transform
from appliance.processing.tasks import Postprocessor

BOX_MATCH_IOU = 0.5
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class VerifyThresholds:
    min_cosine: float = 0.98
    min_same_label: float = 0.9
    min_boxes: float = 0.9


@dataclass(frozen=True)
class Comparison:
    """Outputs per sample (each a list of arrays, in output order) of both runtimes."""

    task: str
    names: tuple[str, ...]
    reference: Sequence[Sequence[np.ndarray]]
    candidate: Sequence[Sequence[np.ndarray]]
    transforms: Sequence[Transform]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 or ny == 0.0:
        return 1.0 if nx == ny else 0.0
    return float(np.dot(x, y) / (nx * ny))


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def output_rows(comparison: Comparison) -> list[dict[str, Any]]:
    rows = []
    for k, name in enumerate(comparison.names):
        pairs = [
            (ref[k], cand[k]) for ref, cand in zip(comparison.reference, comparison.candidate, strict=True)
        ]
        cosines = [cosine(r, c) for r, c in pairs]
        errors = [float(np.max(np.abs(r.astype(np.float64) - c.astype(np.float64)))) for r, c in pairs]
        rows.append(
            {
                "name": name,
                "max_abs_error": max(errors),
                "cosine": min(cosines),
                "cosine_mean": float(np.mean(cosines)),
            }
        )
    return rows


def same_label(reference: Sequence[Inference], candidate: Sequence[Inference]) -> float:
    same = [r.label_id == c.label_id for r, c in zip(reference, candidate, strict=True)]
    return float(np.mean(same)) if same else 1.0


def _partners(ref: Sequence[Detection], cand: Sequence[Detection]) -> list[float]:
    """Greedy matching by IoU within each class; the IoU of every matched pair."""
    used: set[int] = set()
    found = []
    for det in sorted(ref, key=lambda d: -d.score):
        scored = [
            (iou(det.box, other.box), j)
            for j, other in enumerate(cand)
            if j not in used and other.label_id == det.label_id
        ]
        best, j = max(scored, default=(0.0, -1))
        if best >= BOX_MATCH_IOU:
            used.add(j)
            found.append(best)
    return found


def box_agreement(
    reference: Sequence[Inference], candidate: Sequence[Inference]
) -> tuple[float, float | None]:
    matched: list[float] = []
    total = 0
    for ref, cand in zip(reference, candidate, strict=True):
        total += max(len(ref.detections), len(cand.detections))
        matched.extend(_partners(ref.detections, cand.detections))
    agreement = len(matched) / total if total else 1.0
    return agreement, (float(np.mean(matched)) if matched else None)


def _task_checks(
    comparison: Comparison, post: Postprocessor, limits: VerifyThresholds
) -> tuple[dict[str, Any], list[str]]:
    ref = [post(list(o), t) for o, t in zip(comparison.reference, comparison.transforms, strict=True)]
    cand = [post(list(o), t) for o, t in zip(comparison.candidate, comparison.transforms, strict=True)]
    found: dict[str, Any] = {}
    problems: list[str] = []
    if comparison.task == "classify":
        found["same_label"] = same_label(ref, cand)
        if found["same_label"] < limits.min_same_label:
            problems.append(
                f"top-1 class agrees on {found['same_label']:.0%} of samples (< {limits.min_same_label:.0%})"
            )
    elif comparison.task == "detect":
        found["box_agreement"], found["mean_box_iou"] = box_agreement(ref, cand)
        if found["box_agreement"] < limits.min_boxes:
            problems.append(f"boxes agree {found['box_agreement']:.0%} (< {limits.min_boxes:.0%})")
    return found, problems


def verify(comparison: Comparison, post: Postprocessor | None, limits: VerifyThresholds) -> dict[str, Any]:
    """The report stored in the manifest: numbers, thresholds, problems and `passed`."""
    rows = output_rows(comparison)
    problems = [
        f"output {row['name']}: cosine {row['cosine']:.4f} (< {limits.min_cosine})"
        for row in rows
        if row["cosine"] < limits.min_cosine
    ]
    report: dict[str, Any] = {
        "samples": len(comparison.reference),
        "outputs": rows,
        "same_label": None,
        "box_agreement": None,
        "mean_box_iou": None,
        "thresholds": dataclasses.asdict(limits),
    }
    if post is not None:
        found, more = _task_checks(comparison, post, limits)
        report.update(found)
        problems.extend(more)
    report["problems"] = problems
    report["passed"] = not problems
    return report
