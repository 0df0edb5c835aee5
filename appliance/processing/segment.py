"""Segmentation: mask coverage, the mask's bounding box in source pixels, and the dominant class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from appliance.errors import ModelRejected
from appliance.models.manifest import Manifest
from appliance.processing.inference import Detection, Inference, Transform
from appliance.processing.quant import dequantize
from appliance.tensorspec import TensorSpec


class Segmenter:
    """1xHxWx1 (foreground probability or logit) or 1xHxWxC (class scores; class 0 is background)."""

    def __init__(self, manifest: Manifest, outputs: Sequence[TensorSpec]) -> None:
        if len(outputs) != 1 or len(outputs[0].shape) != 4:
            raise ModelRejected("a segmentation model has one output shaped 1xHxWxC")
        self._manifest = manifest
        self._spec = outputs[0]
        self.mask: np.ndarray | None = None  # the last mask, for live overlays

    def _foreground(self, scores: np.ndarray) -> tuple[np.ndarray, int]:
        if scores.shape[-1] == 1:
            probs = scores[..., 0]
            if probs.min() < 0.0 or probs.max() > 1.0:
                probs = 1.0 / (1.0 + np.exp(-probs))
            return probs >= self._manifest.thresholds.mask, 0
        classes = np.argmax(scores, axis=-1)
        fg = classes != 0
        counts = np.bincount(classes[fg].ravel(), minlength=scores.shape[-1])
        return fg, int(np.argmax(counts)) if fg.any() else 0

    def __call__(self, outputs: Sequence[np.ndarray], transform: Transform) -> Inference:
        scores = dequantize(outputs[0], self._spec)[0]
        mask, class_id = self._foreground(scores)
        self.mask = mask
        coverage = float(mask.mean())
        extra: dict[str, object] = {"coverage": round(coverage, 5)}
        if not mask.any():
            return Inference(None, None, 0.0, 0, extra=extra)
        ys, xs = np.nonzero(mask)
        h, w = mask.shape
        x1, y1 = transform.to_source(xs.min() / w, ys.min() / h)
        x2, y2 = transform.to_source((xs.max() + 1) / w, (ys.max() + 1) / h)
        label = self._manifest.label_of(class_id)
        extra["mask_box"] = [round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)]
        det = Detection(label, class_id, coverage, (x1, y1, x2, y2))
        return Inference(label, class_id, coverage, 1, (det,), extra)
