"""The demo video: real sample photos (scikit-image's astronaut and rocket) moved and scaled over a
background, with a JSON sidecar giving, per frame, where the pasted photo is (the ground truth)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from appliance.errors import ApplianceError

WIDTH, HEIGHT, FPS = 640, 480, 15
FOURCC = "mp4v"
ASTRONAUT_CROP = (30, 330, 60, 420)  # rows, cols of the upper body in the 512x512 sample
# The face in the crop, confirmed by eye on the full sample at (180, 82)-(274, 176): centre and size.
FACE_IN_CROP = (167.0, 99.0, 94.0)


@dataclass(frozen=True)
class Placement:
    """Where frame `index` shows which photo: top-left corner and scale of the 512x512 (or so) sample."""

    index: int
    photo: str
    x: int
    y: int
    scale: float


def _samples() -> dict[str, np.ndarray]:
    r0, r1, c0, c1 = ASTRONAUT_CROP
    return {
        "astronaut": cv2.cvtColor(data.astronaut()[r0:r1, c0:c1], cv2.COLOR_RGB2BGR),
        "rocket": cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR),
    }


def _background() -> np.ndarray:
    coffee = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    blurred: np.ndarray = cv2.GaussianBlur(cv2.resize(coffee, (WIDTH, HEIGHT)), (31, 31), 0)
    return (blurred * 0.6).astype(np.uint8)


def placements(frames: int) -> list[Placement]:
    """Astronaut on a Lissajous path, growing and shrinking; the last quarter shows a rocket (no face)."""
    out = []
    crop_h, crop_w = ASTRONAUT_CROP[1] - ASTRONAUT_CROP[0], ASTRONAUT_CROP[3] - ASTRONAUT_CROP[2]
    for i in range(frames):
        t = i / max(frames - 1, 1)
        if t > 0.75:
            out.append(Placement(i, "rocket", 120, 80, 0.6))
            continue
        scale = 0.9 + 0.4 * (0.5 + 0.5 * math.sin(2 * math.pi * t * 2))
        x = int((WIDTH - crop_w * scale) * (0.5 + 0.5 * math.sin(2 * math.pi * t * 3)))
        y = int((HEIGHT - crop_h * scale) * (0.5 + 0.5 * math.cos(2 * math.pi * t * 2)))
        out.append(Placement(i, "astronaut", x, y, scale))
    return out


def face_of(placement: Placement) -> tuple[float, float, float] | None:
    """Ground truth: centre x, y and size of the face in the frame, or None when no face is shown."""
    if placement.photo != "astronaut":
        return None
    cx, cy, size = FACE_IN_CROP
    s = placement.scale
    return placement.x + cx * s, placement.y + cy * s, size * s


def render(placement: Placement, photos: dict[str, np.ndarray], background: np.ndarray) -> np.ndarray:
    frame = background.copy()
    photo = photos[placement.photo]
    h, w = photo.shape[:2]
    size = (int(w * placement.scale), int(h * placement.scale))
    small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    y2, x2 = min(placement.y + size[1], HEIGHT), min(placement.x + size[0], WIDTH)
    frame[placement.y : y2, placement.x : x2] = small[: y2 - placement.y, : x2 - placement.x]
    return frame


def write_demo_video(path: Path, frames: int = 120) -> Path:
    """Write the video and `<path>.json` with the placements; returns the video path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    photos, background = _samples(), _background()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*FOURCC), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise ApplianceError(f"OpenCV cannot write {FOURCC} video to {path}")
    plan = placements(frames)
    try:
        for placement in plan:
            writer.write(render(placement, photos, background))
    finally:
        writer.release()
    path.with_suffix(".json").write_text(json.dumps([asdict(p) for p in plan]), encoding="utf-8")
    return path
