"""Judging one result against a job: per-region verdicts, reasons, a PLC reason code and pass bits.

A detection belongs to a region when the centre of its box ((x1 + x2) / 2, (y1 + y2) / 2, source
pixels) lies inside the region: rectangles include their edges, polygons use the even-odd rule. A
detection can belong to several overlapping regions, and to none.

Each region checks, in this order, and reports every failure (not just the first):
forbidden labels, required labels, counts per label, min score, box width/height, mask coverage.
The job's reason code for a PLC is the code of the first reason of the lowest-numbered failing region.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import cv2
import numpy as np

from appliance.inspection.recipe import ANY_LABEL, Job, LabelCount, Region
from appliance.pipeline.results import Result
from appliance.processing.inference import Detection


class Cause(IntEnum):
    """NG reason codes for PLCs (stable; documented in docs/inspection.md)."""

    OK = 0
    MISSING_LABEL = 1
    FORBIDDEN_LABEL = 2
    TOO_MANY = 3
    TOO_FEW = 4
    LOW_SCORE = 5
    BOX_SIZE = 6
    COVERAGE = 7
    WRONG_MODEL = 8


@dataclass(frozen=True)
class Reason:
    region: int  # 0: the job as a whole
    cause: Cause
    text: str


@dataclass(frozen=True)
class RegionVerdict:
    region: int
    name: str
    ok: bool
    count: int  # detections whose box centre lies in the region
    reasons: tuple[Reason, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "name": self.name,
            "ok": self.ok,
            "count": self.count,
            "reasons": [r.text for r in self.reasons],
        }


@dataclass(frozen=True)
class JobVerdict:
    job: int
    job_version: int
    ok: bool
    regions: tuple[RegionVerdict, ...]
    reasons: tuple[Reason, ...]  # every reason, job-level first, then by region

    @property
    def pass_bits(self) -> int:
        """Bit (id - 1) set for every region that passed (16 regions fit one register)."""
        return sum(1 << (r.region - 1) for r in self.regions if r.ok)

    @property
    def reason_code(self) -> int:
        return int(self.reasons[0].cause) if self.reasons else int(Cause.OK)

    @property
    def ng_region(self) -> int:
        """The region of the first reason (0 when OK or when the job as a whole failed)."""
        return self.reasons[0].region if self.reasons else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "job_version": self.job_version,
            "ok": self.ok,
            "pass_bits": self.pass_bits,
            "reason_code": self.reason_code,
            "ng_region": self.ng_region,
            "reasons": [r.text for r in self.reasons],
            "regions": [r.to_json() for r in self.regions],
        }


def centre(detection: Detection) -> tuple[float, float]:
    x1, y1, x2, y2 = detection.box
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0


def members(region: Region, detections: tuple[Detection, ...]) -> list[Detection]:
    return [d for d in detections if region.contains(*centre(d))]


def _plural(count: int, label: str) -> str:
    if label == ANY_LABEL:
        return f"{count} object" if count == 1 else f"{count} objects"
    return f"{count} {label}"


def _count_reasons(region: Region, found: list[Detection], rule: LabelCount) -> list[Reason]:
    n = len(found) if rule.label == ANY_LABEL else sum(d.label == rule.label for d in found)
    prefix = f"region {region.id}: {_plural(n, rule.label)}"
    if rule.max is not None and n > rule.max:
        return [Reason(region.id, Cause.TOO_MANY, f"{prefix}, max {rule.max}")]
    if n < rule.min:
        return [Reason(region.id, Cause.TOO_FEW, f"{prefix}, min {rule.min}")]
    return []


def _label_reasons(region: Region, found: list[Detection]) -> list[Reason]:
    labels = [d.label for d in found]
    reasons = [
        Reason(region.id, Cause.FORBIDDEN_LABEL, f"region {region.id}: forbidden label {label}")
        for label in region.rule.forbidden
        if label in labels
    ]
    reasons += [
        Reason(region.id, Cause.MISSING_LABEL, f"region {region.id}: missing label {label}")
        for label in region.rule.required
        if label not in labels
    ]
    for count in region.rule.counts:
        reasons += _count_reasons(region, found, count)
    return reasons


def _detection_reasons(region: Region, found: list[Detection]) -> list[Reason]:
    rule, reasons = region.rule, []
    for d in found:
        if d.score < rule.min_score:
            text = f"region {region.id}: {d.label} score {d.score:.2f}, min {rule.min_score:.2f}"
            reasons.append(Reason(region.id, Cause.LOW_SCORE, text))
        x1, y1, x2, y2 = d.box
        for what, size, limits in (("width", x2 - x1, rule.box_width), ("height", y2 - y1, rule.box_height)):
            if limits is not None and not limits.contains(size):
                text = f"region {region.id}: {d.label} {what} {size:.0f} px, limits {limits.text()}"
                reasons.append(Reason(region.id, Cause.BOX_SIZE, text))
    return reasons


def region_mask(region: Region, shape: tuple[int, int]) -> np.ndarray:
    """The region as a boolean HxW mask (pixel centres inside the region)."""
    mask = np.zeros(shape, np.uint8)
    if region.shape == "rect":
        x1, y1, x2, y2 = (round(v) for v in region.bounds())
        mask[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = 1
    else:
        points = np.array([[round(x), round(y)] for x, y in region.points], np.int32)
        cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def coverage_of(region: Region, result: Result, mask: np.ndarray | None) -> float | None:
    """Fraction of the region covered by `mask` (HxW bool, source pixels); without a mask, the
    whole-frame coverage the segmentation post-processor recorded (result.extra["coverage"])."""
    if mask is not None:
        inside = region_mask(region, (mask.shape[0], mask.shape[1]))
        total = int(inside.sum())
        return float(mask[inside].sum()) / total if total else 0.0
    value = result.extra.get("coverage")
    return float(value) if isinstance(value, int | float) else None


def _coverage_reasons(region: Region, result: Result, mask: np.ndarray | None) -> list[Reason]:
    limits = region.rule.coverage
    if limits is None:
        return []
    value = coverage_of(region, result, mask)
    if value is None:
        text = f"region {region.id}: no segmentation coverage in the result"
        return [Reason(region.id, Cause.COVERAGE, text)]
    if limits.contains(value):
        return []
    text = f"region {region.id}: coverage {value:.3f}, limits {limits.text()}"
    return [Reason(region.id, Cause.COVERAGE, text)]


def judge_region(region: Region, result: Result, mask: np.ndarray | None = None) -> RegionVerdict:
    found = members(region, result.detections)
    reasons = _label_reasons(region, found) + _detection_reasons(region, found)
    reasons += _coverage_reasons(region, result, mask)
    return RegionVerdict(region.id, region.name, not reasons, len(found), tuple(reasons))


def _model_reasons(job: Job, result: Result) -> list[Reason]:
    """The result must come from the pinned model (after a second stage, result.model is still the
    detector; the classifier's labels replace the detections' labels)."""
    if (result.model, result.model_version) == (job.model.name, job.model.version):
        return []
    got = f"{result.model}:{result.model_version}"
    text = f"job {job.number}: result from model {got}, the job pins {job.model.ref}"
    return [Reason(0, Cause.WRONG_MODEL, text)]


def evaluate(job: Job, result: Result, mask: np.ndarray | None = None) -> JobVerdict:
    """The verdict of `job` on `result` (a segmentation `mask` in source pixels for coverage rules)."""
    job_reasons = _model_reasons(job, result)
    regions = tuple(judge_region(r, result, mask) for r in job.regions)
    reasons = tuple(job_reasons) + tuple(x for r in regions for x in r.reasons)
    return JobVerdict(job.number, job.version, not reasons, regions, reasons)
