"""Job recipes: what one inspection job checks, and the validator that turns any input into one.

A job is numbered 1-999 and names the model it runs (name + pinned version), its regions of
interest (rectangles or polygons in source pixels, at most 16, each with its own rule), the
snapshot policy and an optional second stage (classify each detected box with a second model).

`parse_job` accepts any decoded JSON/TOML value and either returns a `Job` or raises `RecipeError`
listing every problem found, each with the path of the offending key; it never raises anything else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import BadRequest

MIN_JOB, MAX_JOB = 1, 999
MAX_REGIONS = 16  # one 16-bit register of per-region pass bits
MAX_POINTS = 64
MAX_LABELS = 64
MAX_COORD = 100_000.0
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LABEL_PATTERN = re.compile(r"^[^\x00-\x1f]{1,64}$")
ANY_LABEL = "*"
SHAPES = ("rect", "polygon")
SNAPSHOT_KEEP = ("none", "ng", "all")

Point = tuple[float, float]


class RecipeError(BadRequest):
    """A job recipe that is not valid; `problems` lists every problem, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid job: " + "; ".join(problems))


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class Limits:
    """A closed interval; None on a side means unbounded."""

    min: float | None = None
    max: float | None = None

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def text(self) -> str:
        low = "" if self.min is None else f"{self.min:g}"
        high = "" if self.max is None else f"{self.max:g}"
        return f"{low}..{high}"


@dataclass(frozen=True)
class LabelCount:
    """How many detections of `label` ("*": any label) the region must hold."""

    label: str
    min: int = 0
    max: int | None = None


@dataclass(frozen=True)
class RegionRule:
    required: tuple[str, ...] = ()  # each at least once
    forbidden: tuple[str, ...] = ()  # none of these
    counts: tuple[LabelCount, ...] = ()
    min_score: float = 0.0  # every detection in the region must reach it
    box_width: Limits | None = None  # source pixels, every detection in the region
    box_height: Limits | None = None
    coverage: Limits | None = None  # fraction 0..1 of the region covered by the segmentation mask


@dataclass(frozen=True)
class Region:
    id: int  # 1..16, the bit (id - 1) of the pass bit field
    name: str
    shape: str  # "rect": points = ((x1, y1), (x2, y2)); "polygon": 3..64 vertices
    points: tuple[Point, ...]
    rule: RegionRule = field(default_factory=RegionRule)

    def bounds(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)

    def contains(self, x: float, y: float) -> bool:
        """Rectangles include their edges; polygons use the even-odd rule (edges may go either way)."""
        if self.shape == "rect":
            x1, y1, x2, y2 = self.bounds()
            return x1 <= x <= x2 and y1 <= y <= y2
        inside = False
        pts = self.points
        for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1], strict=True):
            if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
                inside = not inside
        return inside


@dataclass(frozen=True)
class SnapshotPolicy:
    keep: str = "ng"  # none, ng (every NG image), all (every NG + OK at ok_sample_rate)
    ok_sample_rate: float = 0.0  # 0..1: the fraction of OK images archived when keep = "all"


@dataclass(frozen=True)
class Job:
    number: int
    name: str
    model: ModelRef
    regions: tuple[Region, ...]
    snapshot: SnapshotPolicy = field(default_factory=SnapshotPolicy)
    second_stage: ModelRef | None = None
    description: str = ""
    version: int = 0  # assigned by the store on save

    def region(self, region_id: int) -> Region:
        return next(r for r in self.regions if r.id == region_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "model": {"name": self.model.name, "version": self.model.version},
            "second_stage": None
            if self.second_stage is None
            else {"name": self.second_stage.name, "version": self.second_stage.version},
            "snapshot": {"keep": self.snapshot.keep, "ok_sample_rate": self.snapshot.ok_sample_rate},
            "regions": [_region_json(r) for r in self.regions],
        }


def _limits_json(limits: Limits | None) -> dict[str, float] | None:
    if limits is None:
        return None
    return {k: v for k, v in (("min", limits.min), ("max", limits.max)) if v is not None}


def _region_json(region: Region) -> dict[str, Any]:
    rule = region.rule
    data: dict[str, Any] = {
        "id": region.id,
        "name": region.name,
        "shape": region.shape,
        "points": [[x, y] for x, y in region.points],
        "required": list(rule.required),
        "forbidden": list(rule.forbidden),
        "counts": [
            {"label": c.label, "min": c.min, **({} if c.max is None else {"max": c.max})} for c in rule.counts
        ],
        "min_score": rule.min_score,
    }
    for key in ("box_width", "box_height", "coverage"):
        limits = _limits_json(getattr(rule, key))
        if limits is not None:
            data[key] = limits
    return data


# ------------------------------------------------------------------ validation
class _Checker:
    """Collects problems with the key path where each was found."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def table(self, value: object, path: str, keys: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"must be a table/object, got {_kind(value)}")
            return {}
        for key in value:
            if key not in keys:
                self.fail(f"{path}.{key}" if path else str(key), f"unknown key (known: {', '.join(keys)})")
        return value

    def integer(self, value: object, path: str, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, got {_kind(value)}")
            return None
        if not low <= value <= high:
            self.fail(path, f"must be {low}..{high}, got {value}")
            return None
        return value

    def number(self, value: object, path: str, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"must be a number, got {_kind(value)}")
            return None
        number = float(value)
        if not math.isfinite(number) or not low <= number <= high:
            self.fail(path, f"must be a number in {low:g}..{high:g}, got {value!r}")
            return None
        return number

    def text(self, value: object, path: str, pattern: re.Pattern[str], what: str) -> str | None:
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {_kind(value)}")
            return None
        if not pattern.match(value):
            self.fail(path, f"{value[:80]!r} is not a valid {what}")
            return None
        return value

    def labels(self, value: object, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.fail(path, f"must be a list of labels, got {_kind(value)}")
            return ()
        if len(value) > MAX_LABELS:
            self.fail(path, f"at most {MAX_LABELS} labels, got {len(value)}")
            return ()
        found = [self.text(v, f"{path}[{i}]", LABEL_PATTERN, "label") for i, v in enumerate(value)]
        return tuple(v for v in found if v is not None)


def _kind(value: object) -> str:
    names = {dict: "a table", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def _model(c: _Checker, value: object, path: str) -> ModelRef | None:
    data = c.table(value, path, ("name", "version"))
    for key in ("name", "version"):
        if isinstance(value, dict) and key not in data:
            c.fail(f"{path}.{key}", "missing (a job pins its model's version)")
    name = c.text(data["name"], f"{path}.name", MODEL_PATTERN, "model name") if "name" in data else None
    version = c.integer(data["version"], f"{path}.version", 1, 10**9) if "version" in data else None
    return None if name is None or version is None else ModelRef(name, version)


def _limits(c: _Checker, value: object, path: str, high: float) -> Limits | None:
    data = c.table(value, path, ("min", "max"))
    low = c.number(data["min"], f"{path}.min", 0.0, high) if "min" in data else None
    top = c.number(data["max"], f"{path}.max", 0.0, high) if "max" in data else None
    if low is not None and top is not None and low > top:
        c.fail(path, f"min {low:g} is above max {top:g}")
    return Limits(low, top)


def _counts(c: _Checker, value: object, path: str) -> tuple[LabelCount, ...]:
    if not isinstance(value, list):
        c.fail(path, f"must be a list of {{label, min, max}}, got {_kind(value)}")
        return ()
    counts: list[LabelCount] = []
    for i, item in enumerate(value[:MAX_LABELS]):
        where = f"{path}[{i}]"
        data = c.table(item, where, ("label", "min", "max"))
        if isinstance(item, dict) and "label" not in data:
            c.fail(f"{where}.label", f'missing (a label, or "{ANY_LABEL}" for any)')
        label = c.text(data["label"], f"{where}.label", LABEL_PATTERN, "label") if "label" in data else None
        low = c.integer(data.get("min", 0), f"{where}.min", 0, 10_000)
        high = c.integer(data["max"], f"{where}.max", 0, 10_000) if "max" in data else None
        if low is not None and high is not None and low > high:
            c.fail(where, f"min {low} is above max {high}")
        if label is not None and low is not None:
            counts.append(LabelCount(label, low, high))
    if len(value) > MAX_LABELS:
        c.fail(path, f"at most {MAX_LABELS} entries, got {len(value)}")
    return tuple(counts)


RULE_KEYS = ("required", "forbidden", "counts", "min_score", "box_width", "box_height", "coverage")
REGION_KEYS = ("id", "name", "shape", "points", *RULE_KEYS)


def _rule(c: _Checker, data: dict[str, Any], path: str) -> RegionRule:
    required = c.labels(data.get("required", []), f"{path}.required")
    forbidden = c.labels(data.get("forbidden", []), f"{path}.forbidden")
    for label in sorted(set(required) & set(forbidden)):
        c.fail(path, f"label {label!r} is both required and forbidden")
    score = c.number(data.get("min_score", 0.0), f"{path}.min_score", 0.0, 1.0)
    sizes = {
        k: _limits(c, data[k], f"{path}.{k}", MAX_COORD) for k in ("box_width", "box_height") if k in data
    }
    coverage = _limits(c, data["coverage"], f"{path}.coverage", 1.0) if "coverage" in data else None
    return RegionRule(
        required,
        forbidden,
        _counts(c, data.get("counts", []), f"{path}.counts"),
        score or 0.0,
        sizes.get("box_width"),
        sizes.get("box_height"),
        coverage,
    )


def _points(c: _Checker, value: object, path: str, shape: str | None) -> tuple[Point, ...]:
    if not isinstance(value, list) or len(value) > MAX_POINTS:
        c.fail(path, f"must be a list of at most {MAX_POINTS} [x, y] pairs, got {_kind(value)}")
        return ()
    points: list[Point] = []
    for i, item in enumerate(value):
        if not isinstance(item, list) or len(item) != 2:
            c.fail(f"{path}[{i}]", f"must be an [x, y] pair, got {_kind(item)}")
            continue
        x, y = (c.number(v, f"{path}[{i}]", 0.0, MAX_COORD) for v in item)
        if x is not None and y is not None:
            points.append((x, y))
    if len(points) != len(value):
        return ()
    if shape == "rect" and (len(points) != 2 or points[0][0] >= points[1][0] or points[0][1] >= points[1][1]):
        c.fail(path, "a rect is [[x1, y1], [x2, y2]] with x1 < x2 and y1 < y2")
        return ()
    if shape == "polygon" and (len(points) < 3 or _area(points) == 0.0):
        c.fail(path, "a polygon needs at least 3 points enclosing an area")
        return ()
    return tuple(points)


def _area(points: list[Point]) -> float:
    pairs = zip(points, points[1:] + points[:1], strict=True)
    return abs(sum(ax * by - bx * ay for (ax, ay), (bx, by) in pairs)) / 2.0


def _region(c: _Checker, value: object, path: str) -> Region | None:
    data = c.table(value, path, REGION_KEYS)
    for key in ("id", "shape", "points"):
        if isinstance(value, dict) and key not in data:
            c.fail(f"{path}.{key}", "missing")
    region_id = c.integer(data["id"], f"{path}.id", 1, MAX_REGIONS) if "id" in data else None
    name = data.get("name", f"region {region_id}")
    checked_name = c.text(name, f"{path}.name", NAME_PATTERN, "region name")
    shape = data.get("shape")
    if "shape" in data and shape not in SHAPES:
        c.fail(f"{path}.shape", f"must be one of {', '.join(SHAPES)}, got {str(shape)[:40]!r}")
        shape = None
    points = _points(c, data["points"], f"{path}.points", shape) if "points" in data else ()
    rule = _rule(c, data, path)
    if region_id is None or checked_name is None or shape is None or not points:
        return None
    return Region(region_id, checked_name, str(shape), points, rule)


def _regions(c: _Checker, value: object) -> tuple[Region, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_REGIONS:
        c.fail("regions", f"must be a list of 1..{MAX_REGIONS} regions, got {_kind(value)}")
        return ()
    regions = [_region(c, item, f"regions[{i}]") for i, item in enumerate(value)]
    ids = [r.id for r in regions if r is not None]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        c.fail("regions", f"region id {dup} is used twice")
    return tuple(sorted((r for r in regions if r is not None), key=lambda r: r.id))


def _snapshot(c: _Checker, value: object) -> SnapshotPolicy:
    data = c.table(value, "snapshot", ("keep", "ok_sample_rate"))
    keep = data.get("keep", "ng")
    if keep not in SNAPSHOT_KEEP:
        c.fail("snapshot.keep", f"must be one of {', '.join(SNAPSHOT_KEEP)}, got {str(keep)[:40]!r}")
        keep = "ng"
    rate = c.number(data.get("ok_sample_rate", 0.0), "snapshot.ok_sample_rate", 0.0, 1.0)
    return SnapshotPolicy(str(keep), rate or 0.0)


JOB_KEYS = ("number", "name", "version", "description", "model", "second_stage", "snapshot", "regions")


def parse_job(value: object) -> Job:
    """A validated Job from decoded JSON/TOML; raises RecipeError listing every problem."""
    c = _Checker()
    data = c.table(value, "", JOB_KEYS)
    for key in ("number", "name", "model", "regions"):
        if isinstance(value, dict) and key not in data:
            c.fail(key, "missing")
    number = c.integer(data["number"], "number", MIN_JOB, MAX_JOB) if "number" in data else None
    name = c.text(data["name"], "name", NAME_PATTERN, "job name") if "name" in data else None
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > 1000:
        c.fail("description", "must be a string of at most 1000 characters")
        description = ""
    model = _model(c, data["model"], "model") if "model" in data else None
    stage = data.get("second_stage")
    second = None if stage is None else _model(c, stage, "second_stage")
    regions = _regions(c, data["regions"]) if "regions" in data else ()
    snapshot = _snapshot(c, data.get("snapshot", {}))
    if c.problems or number is None or name is None or model is None or not regions:
        raise RecipeError(c.problems or ["not a job"])
    return Job(number, name, model, regions, snapshot, second, description)


def iter_labels(job: Job) -> Iterator[str]:
    """Every label a job's rules name (for checking them against the model's labels)."""
    for region in job.regions:
        rule = region.rule
        yield from rule.required
        yield from rule.forbidden
        yield from (c.label for c in rule.counts if c.label != ANY_LABEL)
