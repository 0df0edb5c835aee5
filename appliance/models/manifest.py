"""The manifest stored beside every model version: what the model is and how to feed and read it."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import ModelRejected
from appliance.tensorspec import TensorSpec

TASKS = ("classify", "detect", "segment", "raw")
LAYOUTS = ("nhwc", "nchw")
COLORS = ("rgb", "bgr", "gray")
RESIZE_MODES = ("stretch", "letterbox")
DECODERS = ("auto", "anchors", "yolo", "ssd_postprocessed")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_LABELS = 2048  # detect, segment and raw models (a classifier's labels must match its classes)
MAX_LABEL_CHARS = 128
MAX_TOP_K = 1000
MAX_DETECTIONS = 10_000


@dataclass(frozen=True)
class InputSpec:
    """How a frame becomes the model's input: value = (pixel - mean) / std, per channel."""

    layout: str = "nhwc"
    color: str = "rgb"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (255.0, 255.0, 255.0)
    resize: str = "stretch"


@dataclass(frozen=True)
class Thresholds:
    """Post-processing limits; checked when made, so a bad value is refused before anything is stored."""

    score: float = 0.5
    iou: float = 0.3
    top_k: int = 5
    mask: float = 0.5
    max_detections: int = 100

    def __post_init__(self) -> None:
        for name in ("score", "iou", "mask"):
            value = getattr(self, name)
            if not _number(value) or not 0.0 <= value <= 1.0:
                raise ModelRejected(f"{name} threshold must be a number from 0 to 1, got {value!r}")
        for name, high in (("top_k", MAX_TOP_K), ("max_detections", MAX_DETECTIONS)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise ModelRejected(f"{name} must be a whole number from 1 to {high}, got {value!r}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class AnchorSpec:
    """SSD anchor generation (MediaPipe SsdAnchorsCalculator options); defaults: BlazeFace short range."""

    num_layers: int = 4
    strides: tuple[int, ...] = (8, 16, 16, 16)
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    offset: float = 0.5
    fixed_anchor_size: bool = True
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    box_scale: float = 128.0
    reverse_output_order: bool = True


@dataclass(frozen=True)
class DecoderSpec:
    kind: str = "auto"
    anchors: AnchorSpec = field(default_factory=AnchorSpec)


@dataclass(frozen=True)
class Manifest:
    name: str
    version: int
    task: str
    file: str
    sha256: str
    size: int
    created: str
    labels: tuple[str, ...] = ()
    input: InputSpec = field(default_factory=InputSpec)
    thresholds: Thresholds = field(default_factory=Thresholds)
    decoder: DecoderSpec = field(default_factory=DecoderSpec)
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    description: str = ""
    # how it became active after a shadow run (appliance/shadow/promotion.py): agreement, frames,
    # override, by, at; None for a version never promoted that way
    promotion: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_labels(self.task, self.labels)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def label_of(self, index: int) -> str:
        return self.labels[index] if 0 <= index < len(self.labels) else str(index)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        if data["promotion"] is None:  # left out: a version before promotions existed reads it as before
            del data["promotion"]
        return data


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ModelRejected(
            f"model name {name!r} is not allowed: use letters, digits, '_', '-' or '.', at most 64, "
            "starting with a letter or digit"
        )
    return name


def check_labels(task: str, labels: tuple[str, ...]) -> None:
    """At most MAX_LABELS labels of MAX_LABEL_CHARS each (a classifier's count must match its classes)."""
    if len(labels) > MAX_LABELS and task != "classify":
        raise ModelRejected(f"{len(labels)} labels: a {task} model takes at most {MAX_LABELS}")
    long = next(
        (label for label in labels if not isinstance(label, str) or len(label) > MAX_LABEL_CHARS), None
    )
    if long is not None:
        raise ModelRejected(
            f"label {str(long)[:40]!r}...: labels are text of at most {MAX_LABEL_CHARS} characters"
        )


def _tuple_fields(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    """The dataclass's fields from JSON, lists back as tuples. Keys the dataclass does not know are left
    out: a manifest written by a newer build (say with a promotion record) stays readable after a
    rollback to an older one."""
    known = {f.name for f in dataclasses.fields(cls)}
    out = {key: value for key, value in data.items() if key in known}
    for f in dataclasses.fields(cls):
        if f.name in out and isinstance(out[f.name], list) and str(f.type).startswith("tuple"):
            out[f.name] = tuple(out[f.name])
    return out


def _tensor(data: dict[str, Any]) -> TensorSpec:
    return TensorSpec(data["name"], tuple(data["shape"]), data["dtype"], data["scale"], data["zero_point"])


def manifest_from_json(data: dict[str, Any]) -> Manifest:
    """Rebuild a Manifest from its stored JSON."""
    try:
        decoder = data.get("decoder", {})
        anchors = AnchorSpec(**_tuple_fields(AnchorSpec, decoder.get("anchors", {})))
        fields = _tuple_fields(Manifest, data)
        fields.update(
            input=InputSpec(**_tuple_fields(InputSpec, data.get("input", {}))),
            thresholds=Thresholds(**data.get("thresholds", {})),
            decoder=DecoderSpec(kind=decoder.get("kind", "auto"), anchors=anchors),
            inputs=tuple(_tensor(t) for t in data.get("inputs", [])),
            outputs=tuple(_tensor(t) for t in data.get("outputs", [])),
        )
        return Manifest(**fields)
    except (TypeError, KeyError, AttributeError, ValueError, ModelRejected) as err:
        raise ModelRejected(f"manifest is damaged: {err}") from err


def check_options(task: str, spec: InputSpec, decoder: DecoderSpec) -> None:
    """Reject option values the pre/post-processing does not know."""
    checks = (
        ("task", task, TASKS),
        ("layout", spec.layout, LAYOUTS),
        ("color", spec.color, COLORS),
        ("resize", spec.resize, RESIZE_MODES),
        ("decoder", decoder.kind, DECODERS),
    )
    for what, value, allowed in checks:
        if value not in allowed:
            raise ModelRejected(f"{what} {value!r} is not one of {', '.join(allowed)}")
    channels = 1 if spec.color == "gray" else 3
    if len(spec.mean) not in (1, channels) or len(spec.std) not in (1, channels):
        raise ModelRejected(f"mean and std need 1 or {channels} values")
    if not all(_number(v) for v in (*spec.mean, *spec.std)):
        raise ModelRejected("mean and std values must be finite numbers")
    if any(s == 0 for s in spec.std):
        raise ModelRejected("std values must not be 0")
