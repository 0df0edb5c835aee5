"""The verification report: the simulator's outputs against LiteRT's float outputs on the same inputs,
which were NOT used for calibration (conversion.py keeps them apart).

Every task, per output: the cosine similarity (worst sample) and the absolute error relative to the
float output's range (cosine ignores scale: a uniformly shrunk output scores 1.0). The bound is on the
mean absolute error over every value of every sample: an error everywhere (wrong scale, raw integers
taken as floats) fails it, while int8 saturation of a few logits far from any decision does not
(measured with rknn-toolkit2 2.5.0 on the face detector: max 42, 99th percentile 17, mean 1.2 on a
range of 134, every box found); the largest error and the 99th percentile are reported too. Classifiers:
the share of samples keeping LiteRT's top-1 class. Detectors: box recall (share of LiteRT's boxes
matched by a box of the same class at IoU >= 0.5) and precision (share of the candidate's boxes
matched); a verify set on which the float model finds no box at all is an error, not agreement.
Classes and boxes come from the appliance's own post-processing, so the report judges what the
appliance would report.
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
ERROR_PERCENTILE = 99.0  # reported: the error below which 99 % of values stay
RELATIVE_CAP = 1e6  # a constant float output with any error (JSON has no infinity)
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class VerifyThresholds:
    min_cosine: float = 0.98
    min_same_label: float = 0.9
    min_boxes: float = 0.9  # box recall
    min_precision: float = 0.9
    max_error: float = 0.05  # mean absolute error / the float output's range


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
        diffs = np.concatenate(
            [np.abs(r.astype(np.float64) - c.astype(np.float64)).ravel() for r, c in pairs]
        )
        low = min(float(np.min(r)) for r, _ in pairs)
        high = max(float(np.max(r)) for r, _ in pairs)
        span = high - low
        worst = float(diffs.max(initial=0.0))
        p99 = float(np.percentile(diffs, ERROR_PERCENTILE)) if diffs.size else 0.0
        mean = float(diffs.mean()) if diffs.size else 0.0
        relative = min(mean / span, RELATIVE_CAP) if span > 0 else (0.0 if mean == 0 else RELATIVE_CAP)
        rows.append(
            {
                "name": name,
                "max_abs_error": worst,
                "p99_abs_error": p99,
                "mean_abs_error": mean,
                "range": span,
                "relative_error": relative,
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


@dataclass(frozen=True)
class BoxScore:
    reference_boxes: int
    candidate_boxes: int
    matched: int
    mean_iou: float | None

    @property
    def recall(self) -> float | None:
        return self.matched / self.reference_boxes if self.reference_boxes else None

    @property
    def precision(self) -> float | None:
        if self.candidate_boxes:
            return self.matched / self.candidate_boxes
        return None if not self.reference_boxes else 1.0  # nothing claimed, nothing wrong claimed


def box_score(reference: Sequence[Inference], candidate: Sequence[Inference]) -> BoxScore:
    matched: list[float] = []
    ref_total = cand_total = 0
    for ref, cand in zip(reference, candidate, strict=True):
        ref_total += len(ref.detections)
        cand_total += len(cand.detections)
        matched.extend(_partners(ref.detections, cand.detections))
    return BoxScore(ref_total, cand_total, len(matched), float(np.mean(matched)) if matched else None)


def box_agreement(
    reference: Sequence[Inference], candidate: Sequence[Inference]
) -> tuple[float | None, float | None]:
    """(matched / the larger box count, mean IoU of the pairs); None when neither side has a box."""
    score = box_score(reference, candidate)
    total = max(score.reference_boxes, score.candidate_boxes)
    return (score.matched / total if total else None), score.mean_iou


def _detector_checks(score: BoxScore, limits: VerifyThresholds, samples: int) -> list[str]:
    if score.reference_boxes == 0:
        return [
            f"the float model finds no box on the {samples} verify sample(s): a detector cannot be "
            "checked there (no boxes on both sides is not agreement); give images with the objects it "
            "detects (--verify DIR)"
        ]
    problems = []
    recall, precision = score.recall or 0.0, score.precision or 0.0
    if recall < limits.min_boxes:
        problems.append(
            f"box recall {recall:.0%} ({score.matched} of {score.reference_boxes} float boxes found, "
            f"< {limits.min_boxes:.0%})"
        )
    if precision < limits.min_precision:
        problems.append(
            f"box precision {precision:.0%} ({score.matched} of {score.candidate_boxes} boxes right, "
            f"< {limits.min_precision:.0%})"
        )
    return problems


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
        score = box_score(ref, cand)
        found.update(
            box_recall=score.recall,
            box_precision=score.precision,
            box_agreement=box_agreement(ref, cand)[0],
            mean_box_iou=score.mean_iou,
            reference_boxes=score.reference_boxes,
            candidate_boxes=score.candidate_boxes,
        )
        problems.extend(_detector_checks(score, limits, len(ref)))
    return found, problems


def _output_problems(rows: list[dict[str, Any]], limits: VerifyThresholds) -> list[str]:
    problems = []
    for row in rows:
        if row["cosine"] < limits.min_cosine:
            problems.append(f"output {row['name']}: cosine {row['cosine']:.4f} (< {limits.min_cosine})")
        if row["relative_error"] > limits.max_error:
            problems.append(
                f"output {row['name']}: mean abs error {row['mean_abs_error']:.4g} is "
                f"{row['relative_error']:.1%} of the float output's range {row['range']:.4g} "
                f"(> {limits.max_error:.1%}; max {row['max_abs_error']:.4g})"
            )
    return problems


def verify(comparison: Comparison, post: Postprocessor | None, limits: VerifyThresholds) -> dict[str, Any]:
    """The report stored in the manifest: numbers, thresholds, problems and `passed`."""
    rows = output_rows(comparison)
    problems = _output_problems(rows, limits)
    report: dict[str, Any] = {
        "samples": len(comparison.reference),
        "outputs": rows,
        "same_label": None,
        "box_agreement": None,
        "box_recall": None,
        "box_precision": None,
        "mean_box_iou": None,
        "thresholds": dataclasses.asdict(limits),
    }
    if not comparison.reference:
        problems.append("no verify samples")
    if post is not None and comparison.reference:
        found, more = _task_checks(comparison, post, limits)
        report.update(found)
        problems.extend(more)
    report["problems"] = problems
    report["passed"] = not problems
    return report
