"""Detect -> classify each crop: the optional second stage of a job.

`CropClassifier` opens a classification model once (on the first backend of `order` that can run
it) and classifies a list of crops in batches of the model's own input batch size: a model with a
1xHxWxC input runs once per crop, a model with an NxHxWxC input takes N crops per run (the last
batch is padded with zeros). Each crop is preprocessed exactly as a frame is for that model
(resize, colour order, normalisation, quantisation from its manifest).

`second_stage(result, image, classifier)` crops every detection's box from `image` (source pixels,
clamped to the image; an optional margin grows the box first), classifies the crops and returns the
result with each detection's label, label id and score replaced by the classifier's. The
detector's own labels and scores are kept in `result.extra["second_stage"]`. A box that is empty
after clamping gets the label "unclassified" (label id -1, score 0).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.backends.base import BackendOptions, Context
from appliance.backends.registry import Opener, open_with_fallback
from appliance.errors import ModelRejected
from appliance.models.manifest import Manifest
from appliance.pipeline.results import Result
from appliance.processing.classify import Classifier
from appliance.processing.image import Preprocessor
from appliance.processing.inference import Detection, Inference

UNCLASSIFIED = "unclassified"
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class CropLabel:
    label: str
    label_id: int
    score: float


def crop_box(image: np.ndarray, box: Box, margin: float = 0.0) -> np.ndarray | None:
    """The pixels of `box` (grown by `margin` x its size on each side), clamped; None when empty."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    if not all(math.isfinite(v) for v in box):
        return None
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, math.floor(x1 - dx)), max(0, math.floor(y1 - dy))
    right, bottom = min(w, math.ceil(x2 + dx)), min(h, math.ceil(y2 + dy))
    if right <= left or bottom <= top:
        return None
    return image[top:bottom, left:right]


class CropClassifier:
    """A classification model opened for crops; thread-safe (one context, used under a lock)."""

    def __init__(self, manifest: Manifest, files: dict[str, Path], opener: Opener | None = None) -> None:
        """`opener`: the service's backends in their configured order (Backends.opener); LiteRT alone
        when not given (tools and tests)."""
        if manifest.task != "classify":
            raise ModelRejected(f"second stage {manifest.ref} is a {manifest.task} model, not classify")
        self.manifest = manifest
        options = BackendOptions(threads=1, contexts=1)
        selection = (
            opener(files, options) if opener is not None else open_with_fallback(("litert",), files, options)
        )
        self.backend = selection.backend
        self._context: Context = selection.contexts[0]
        try:
            spec = self._context.inputs[0]
            self.batch = int(spec.shape[0]) if spec.shape and spec.shape[0] > 0 else 1
            self._input_shape, self._input_dtype = spec.shape, np.dtype(spec.dtype)
            one = dataclasses.replace(spec, shape=(1, *spec.shape[1:]))
            self._pre = Preprocessor(one, manifest.input, ring=1)
            out = self._context.outputs[0]
            self._post = Classifier(manifest, [dataclasses.replace(out, shape=(1, *out.shape[1:]))])
        except (IndexError, ModelRejected) as err:
            self.close()
            raise ModelRejected(f"second stage {manifest.ref} cannot classify crops: {err}") from err
        self._lock = threading.Lock()

    def classify(self, crops: Sequence[np.ndarray]) -> list[Inference]:
        """One Inference per crop, in order."""
        results: list[Inference] = []
        with self._lock:
            for start in range(0, len(crops), self.batch):
                results.extend(self._run(crops[start : start + self.batch]))
        return results

    def _run(self, crops: Sequence[np.ndarray]) -> list[Inference]:
        tensor = np.zeros(self._input_shape, self._input_dtype)
        transforms = []
        for row, crop in enumerate(crops):
            one, transform = self._pre(np.ascontiguousarray(crop))
            tensor[row] = one[0]
            transforms.append(transform)
        outputs = self._context.run([tensor])
        return [
            self._post([o[row : row + 1] for o in outputs], transform)
            for row, transform in enumerate(transforms)
        ]

    def close(self) -> None:
        self._context.close()


def classify_boxes(
    classifier: CropClassifier, image: np.ndarray, boxes: Sequence[Box], margin: float = 0.0
) -> list[CropLabel]:
    """The classifier's label for each box (crops batched)."""
    crops = [crop_box(image, box, margin) for box in boxes]
    present = [c for c in crops if c is not None]
    answers = iter(classifier.classify(present))
    labels: list[CropLabel] = []
    for crop in crops:
        if crop is None:
            labels.append(CropLabel(UNCLASSIFIED, -1, 0.0))
            continue
        answer = next(answers)
        labels.append(
            CropLabel(
                answer.label or UNCLASSIFIED,
                -1 if answer.label_id is None else answer.label_id,
                float(answer.score or 0.0),
            )
        )
    return labels


def second_stage(
    result: Result, image: np.ndarray, classifier: CropClassifier, margin: float = 0.0
) -> Result:
    """`result` with every detection relabelled by the classifier (the detector's labels kept in extra)."""
    labels = classify_boxes(classifier, image, [d.box for d in result.detections], margin)
    detections = tuple(
        Detection(c.label, c.label_id, c.score, d.box, d.keypoints)
        for d, c in zip(result.detections, labels, strict=True)
    )
    stage = {
        "model": classifier.manifest.name,
        "model_version": classifier.manifest.version,
        "detector": [{"label": d.label, "score": round(d.score, 5)} for d in result.detections],
    }
    return dataclasses.replace(result, detections=detections, extra={**result.extra, "second_stage": stage})
