"""Explicit registry of post-processors by task, and the check that a model's tensors fit its task."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from appliance.errors import ModelRejected
from appliance.models.manifest import Manifest
from appliance.processing.classify import Classifier
from appliance.processing.detect import Detector
from appliance.processing.image import Geometry
from appliance.processing.inference import Inference, Transform
from appliance.processing.raw import RawOutputs
from appliance.processing.segment import Segmenter
from appliance.tensorspec import TensorSpec


class Postprocessor(Protocol):
    def __call__(self, outputs: Sequence[np.ndarray], transform: Transform) -> Inference: ...


Factory = Callable[[Manifest, Sequence[TensorSpec], tuple[int, int]], Postprocessor]

POSTPROCESSORS: dict[str, Factory] = {
    "classify": lambda m, outs, hw: Classifier(m, outs),
    "detect": Detector,
    "segment": lambda m, outs, hw: Segmenter(m, outs),
    "raw": lambda m, outs, hw: RawOutputs(m, outs),
}


def make_postprocessor(
    manifest: Manifest, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
) -> Postprocessor:
    """The post-processor for the manifest's task; raises ModelRejected when the tensors do not fit it."""
    if manifest.task not in POSTPROCESSORS:
        raise ModelRejected(f"unknown task {manifest.task!r}; known: {', '.join(POSTPROCESSORS)}")
    if manifest.task != "raw" and len(inputs) != 1:
        raise ModelRejected(f"task {manifest.task} needs a model with one input, it has {len(inputs)}")
    hw = (0, 0)
    if manifest.task in ("detect", "segment"):
        geometry = Geometry.of(inputs[0], manifest.input.layout)
        hw = (geometry.height, geometry.width)
    return POSTPROCESSORS[manifest.task](manifest, outputs, hw)
