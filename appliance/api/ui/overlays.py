"""Drawing results on frames: boxes, labels, keypoints and a caption, on a copy of the image."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

BOX_BGR = (0, 200, 255)  # amber: visible on most scenes
TEXT_BGR = (255, 255, 255)
SHADE_BGR = (20, 20, 20)
FONT = cv2.FONT_HERSHEY_SIMPLEX
JPEG_QUALITY = 80


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """White text on a dark band, so it reads on any background."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    x, y = origin
    y = max(y, h + base + 2)
    cv2.rectangle(image, (x, y - h - base - 2), (x + w + 4, y + 2), SHADE_BGR, cv2.FILLED)
    cv2.putText(image, text, (x + 2, y - base // 2), FONT, scale, TEXT_BGR, 1, cv2.LINE_AA)


def _scale_of(image: np.ndarray) -> tuple[float, int]:
    """Text scale and line thickness that suit the frame size."""
    side = max(image.shape[:2])
    return max(0.4, side / 1200), max(1, side // 400)


def draw(image: np.ndarray, detections: Iterable[Mapping[str, Any]], caption: str = "") -> np.ndarray:
    """A copy of the BGR `image` with each detection's box, label and keypoints, and `caption` on top."""
    out = np.ascontiguousarray(image.copy())
    if out.ndim == 2:
        out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)
    scale, thick = _scale_of(out)
    for det in detections:
        x1, y1, x2, y2 = (round(float(v)) for v in det.get("box", (0, 0, 0, 0)))
        cv2.rectangle(out, (x1, y1), (x2, y2), BOX_BGR, thick + 1)
        for kx, ky in det.get("keypoints", ()):
            cv2.circle(out, (int(kx), int(ky)), thick + 1, BOX_BGR, cv2.FILLED)
        _text(out, f"{det.get('label', '?')} {float(det.get('score', 0.0)):.2f}", (x1, y1 - 2), scale)
    if caption:
        _text(out, caption, (0, 0), scale * 1.1)
    return out


def caption_of(label: str | None, score: float | None, count: int, extra: Sequence[str] = ()) -> str:
    """'face 0.93 · 2 objects · 14.8 fps' style caption."""
    parts = [f"{label} {score:.2f}" if label is not None and score is not None else "no label"]
    if count != 1:
        parts.append(f"{count} objects")
    return " | ".join([*parts, *extra])


def jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("frame could not be encoded as JPEG")
    return bytes(data.tobytes())


def placeholder(text: str, size: tuple[int, int] = (640, 360)) -> bytes:
    """A grey JPEG saying `text` (live view while no frame has come yet)."""
    w, h = size
    image = np.full((h, w, 3), 60, np.uint8)
    _text(image, text, (20, h // 2), 0.8)
    return jpeg(image)
