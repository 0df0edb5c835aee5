"""What post-processing produces: a task-independent summary of one inference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Transform:
    """Maps normalised model-input coordinates back to source-image pixels."""

    src_w: int
    src_h: int
    scale_x: float  # model-input pixels per source pixel
    scale_y: float
    pad_x: float = 0.0  # letterbox padding, model-input pixels
    pad_y: float = 0.0
    in_w: int = 1
    in_h: int = 1

    def to_source(self, x: float, y: float) -> tuple[float, float]:
        """Normalised (0..1 of the model input) -> source pixels, clipped to the image."""
        sx = (x * self.in_w - self.pad_x) / self.scale_x
        sy = (y * self.in_h - self.pad_y) / self.scale_y
        return min(max(sx, 0.0), float(self.src_w)), min(max(sy, 0.0), float(self.src_h))


@dataclass(frozen=True)
class Detection:
    label: str
    label_id: int
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in source pixels
    keypoints: tuple[tuple[float, float], ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Detection:
        """The inverse of to_json (coordinates as rounded there)."""
        x1, y1, x2, y2 = (float(v) for v in data["box"])
        points = tuple((float(x), float(y)) for x, y in data.get("keypoints", ()))
        return cls(str(data["label"]), int(data["label_id"]), float(data["score"]), (x1, y1, x2, y2), points)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label,
            "label_id": self.label_id,
            "score": round(self.score, 5),
            "box": [round(v, 1) for v in self.box],
        }
        if self.keypoints:
            data["keypoints"] = [[round(x, 1), round(y, 1)] for x, y in self.keypoints]
        return data


@dataclass(frozen=True)
class Inference:
    """Top label and score, object count, detections, and task-specific extras (JSON-ready)."""

    label: str | None
    label_id: int | None
    score: float | None
    count: int
    detections: tuple[Detection, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
