"""Hard examples kept locally as a dataset, and its export as YOLO or COCO. No cloud.

Kept (`reason_for`): results whose top score lies in a configured band near the threshold
("band"), NG results ("ng"), and frames an operator flags ("wrong" / "right"). Each example is
data_dir/dataset/images/<id>.jpg plus data_dir/dataset/meta/<id>.json holding the model's own
boxes (source pixels), labels and scores, the image size, the reason, model, job, seq and time.
The image is written first and the metadata last (both atomically), so an example is either
complete or absent. At most `max_examples` are kept; the oldest unflagged ones go first.

Export (the boxes are the model's, ready to correct in a labelling tool):
- YOLO: images/<id>.jpg, labels/<id>.txt with `class cx cy w h` normalised to 0..1,
  classes.txt (one name a line, the class index is the line number) and data.yaml.
- COCO: images/<id>.jpg and annotations.json (images, annotations with bbox [x, y, w, h] in
  pixels, categories with ids from 1).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance import atomic
from appliance.errors import BadRequest, NotFound
from appliance.pipeline.results import Result

REASONS = ("band", "ng", "wrong", "right")
FLAGS = ("wrong", "right")
FORMATS = ("yolo", "coco")
ID_PATTERN = re.compile(r"^[0-9]{10}-[0-9]{1,12}$")


@dataclass(frozen=True)
class HardExamplePolicy:
    band: tuple[float, float] | None = (0.4, 0.6)  # top score within [low, high]
    keep_ng: bool = True
    max_examples: int = 5000


@dataclass(frozen=True)
class Box:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 source pixels


@dataclass(frozen=True)
class Example:
    id: str
    reason: str
    width: int
    height: int
    model: str
    model_version: int
    job: int
    seq: int
    ts: float
    boxes: tuple[Box, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "model_version": self.model_version,
            "job": self.job,
            "seq": self.seq,
            "ts": self.ts,
            "boxes": [{"label": b.label, "score": b.score, "box": list(b.box)} for b in self.boxes],
        }


def reason_for(result: Result, ok: bool, policy: HardExamplePolicy) -> str | None:
    """Why `result` is a hard example ("ng" before "band"), or None."""
    if not ok and policy.keep_ng:
        return "ng"
    scores = [d.score for d in result.detections] or ([result.score] if result.score is not None else [])
    if policy.band is not None and scores and policy.band[0] <= max(scores) <= policy.band[1]:
        return "band"
    return None


def _example(data: dict[str, Any]) -> Example:
    boxes = tuple(
        Box(
            str(b["label"]),
            float(b["score"]),
            (float(b["box"][0]), float(b["box"][1]), float(b["box"][2]), float(b["box"][3])),
        )
        for b in data["boxes"]
    )
    return Example(
        str(data["id"]),
        str(data["reason"]),
        int(data["width"]),
        int(data["height"]),
        str(data["model"]),
        int(data["model_version"]),
        int(data["job"]),
        int(data["seq"]),
        float(data["ts"]),
        boxes,
    )


class Dataset:
    """The hard-example dataset in `root`; thread-safe within a process."""

    def __init__(self, root: Path, policy: HardExamplePolicy | None = None) -> None:
        self.root = root
        self.policy = policy or HardExamplePolicy()
        for sub in ("images", "meta"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def add(self, image: np.ndarray, result: Result, reason: str, job: int = 0) -> Example:
        """Keep `image` (BGR) with `result`'s boxes as an example for `reason`."""
        if reason not in REASONS:
            raise BadRequest(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
        if image.ndim != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise BadRequest(f"an example image is HxWx3 uint8, got {image.shape} {image.dtype}")
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise BadRequest("cannot encode the example image")
        example = Example(
            f"{int(result.ts):010d}-{result.seq}",
            reason,
            int(image.shape[1]),
            int(image.shape[0]),
            result.model,
            result.model_version,
            job,
            result.seq,
            result.ts,
            tuple(Box(d.label, round(d.score, 5), d.box) for d in result.detections),
        )
        with self._lock:
            atomic.write_bytes(self.root / "images" / f"{example.id}.jpg", encoded.tobytes())
            meta = json.dumps(example.to_json(), indent=1).encode("utf-8")
            atomic.write_bytes(self.root / "meta" / f"{example.id}.json", meta)
            self._trim()
        return example

    def flag(self, example_id: str, flag: str) -> Example:
        """An operator's verdict on a kept example: `wrong` or `right`."""
        if flag not in FLAGS:
            raise BadRequest(f"flag must be one of {', '.join(FLAGS)}, got {flag!r}")
        example = self.get(example_id)
        flagged = Example(**{**example.__dict__, "reason": flag})
        with self._lock:
            meta = json.dumps(flagged.to_json(), indent=1).encode("utf-8")
            atomic.write_bytes(self.root / "meta" / f"{example_id}.json", meta)
        return flagged

    def get(self, example_id: str) -> Example:
        if not ID_PATTERN.match(example_id):
            raise NotFound(f"no example {example_id[:40]!r}")
        try:
            return _example(json.loads((self.root / "meta" / f"{example_id}.json").read_text("utf-8")))
        except FileNotFoundError as err:
            raise NotFound(f"no example {example_id!r}") from err
        except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
            raise BadRequest(f"example {example_id} is damaged: {err}") from err

    def examples(self) -> list[Example]:
        """Every complete, readable example, oldest first (damaged metadata is skipped)."""
        found = []
        for path in sorted((self.root / "meta").glob("*.json")):
            with contextlib.suppress(NotFound, BadRequest):
                example = self.get(path.stem)
                if (self.root / "images" / f"{example.id}.jpg").is_file():
                    found.append(example)
        return sorted(found, key=lambda e: (e.ts, e.seq))

    def image_path(self, example: Example) -> Path:
        return self.root / "images" / f"{example.id}.jpg"

    def _trim(self) -> None:
        metas = sorted((self.root / "meta").glob("*.json"))
        excess = len(metas) - self.policy.max_examples
        for path in metas:
            if excess <= 0:
                break
            with contextlib.suppress(NotFound, BadRequest):
                if self.get(path.stem).reason in FLAGS:
                    continue
            path.unlink(missing_ok=True)
            (self.root / "images" / f"{path.stem}.jpg").unlink(missing_ok=True)
            excess -= 1

    # ------------------------------------------------------------------ export
    def export(self, out: Path, fmt: str) -> int:
        """Write the dataset to `out` (created; empty or absent) as YOLO or COCO; returns the count."""
        if fmt not in FORMATS:
            raise BadRequest(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise BadRequest(f"{out} exists and is not an empty directory")
        examples = self.examples()
        classes = sorted({b.label for e in examples for b in e.boxes})
        (out / "images").mkdir(parents=True, exist_ok=True)
        for example in examples:
            shutil.copyfile(self.image_path(example), out / "images" / f"{example.id}.jpg")
        if fmt == "yolo":
            write_yolo(out, examples, classes)
        else:
            write_coco(out, examples, classes)
        return len(examples)


def yolo_line(box: Box, width: int, height: int, class_id: int) -> str:
    x1, y1, x2, y2 = box.box
    cx, cy = (x1 + x2) / 2.0 / width, (y1 + y2) / 2.0 / height
    w, h = (x2 - x1) / width, (y2 - y1) / height
    return f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def write_yolo(out: Path, examples: list[Example], classes: list[str]) -> None:
    (out / "labels").mkdir(exist_ok=True)
    index = {name: i for i, name in enumerate(classes)}
    for example in examples:
        lines = [yolo_line(b, example.width, example.height, index[b.label]) for b in example.boxes]
        (out / "labels" / f"{example.id}.txt").write_text("".join(f"{line}\n" for line in lines), "utf-8")
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in classes), "utf-8")
    names = "".join(f"  {i}: {json.dumps(name)}\n" for i, name in enumerate(classes))
    data_yaml = f"path: .\ntrain: images\nval: images\nnc: {len(classes)}\nnames:\n{names}"
    (out / "data.yaml").write_text(data_yaml, "utf-8")


def write_coco(out: Path, examples: list[Example], classes: list[str]) -> None:
    category = {name: i + 1 for i, name in enumerate(classes)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, example in enumerate(examples, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": f"images/{example.id}.jpg",
                "width": example.width,
                "height": example.height,
            }
        )
        for box in example.boxes:
            x1, y1, x2, y2 = box.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category[box.label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                    "score": box.score,
                }
            )
    document = {
        "info": {"description": "appliance hard examples (the model's own boxes)", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": "none"} for name, i in category.items()],
    }
    (out / "annotations.json").write_text(json.dumps(document, indent=1), "utf-8")
