"""Proof that a model can run on what the source delivers, before it is switched in.

The pipeline's `FrameTap` keeps the newest frame the source gave (a reference, no copy) and what kind
of input the source delivers. `prove()` runs a candidate runtime on that frame, or with no frame yet on
an input built from the model's manifest and the source's kind, through pre-processing, inference and
post-processing. Any failure is a ModelRejected naming the model, the input and the stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from appliance.errors import ApplianceError, ModelRejected
from appliance.models.manifest import Manifest
from appliance.processing.inference import Inference, Transform
from appliance.sources.base import Frame
from appliance.tensorspec import TensorSpec


class ModelRuntime(Protocol):
    """What a proof needs of a model runtime (pipeline.runtime.ModelRuntime is one)."""

    @property
    def manifest(self) -> Manifest: ...
    @property
    def inputs(self) -> Sequence[TensorSpec]: ...

    @property
    def image_pre(self) -> Any: ...
    def preprocess(
        self, image: np.ndarray | None, tensor: np.ndarray | None
    ) -> tuple[np.ndarray, Transform]: ...
    def run(self, worker: int, tensor: np.ndarray) -> tuple[list[np.ndarray], str]: ...
    def postprocess(self, outputs: Sequence[np.ndarray], transform: Transform) -> Inference: ...


IMAGE, TENSOR, ANY = "image", "tensor", "any"
TENSOR_KINDS = frozenset({"serial"})  # source kinds that deliver sensor tensors, not images
SYNTHETIC_SIZE = (480, 640)  # height, width of the stand-in image when the model gives none


def input_kind(source_kind: str | None) -> str:
    if source_kind is None:
        return ANY
    return TENSOR if source_kind in TENSOR_KINDS else IMAGE


@dataclass(frozen=True)
class Sample:
    frame: Frame | None
    takes: str  # IMAGE, TENSOR or ANY (no source: the model decides)


class FrameTap:
    """The newest source frame and the kind of input the source delivers; shared, thread-safe."""

    def __init__(self, source_kind: str | None = None) -> None:
        self._frame: Frame | None = None
        self._takes = input_kind(source_kind)
        self._lock = threading.Lock()

    def saw(self, frame: Frame) -> None:
        self._frame = frame

    def reset(self, source_kind: str | None) -> None:
        with self._lock:
            self._frame, self._takes = None, input_kind(source_kind)

    def sample(self) -> Sample:
        with self._lock:
            return Sample(self._frame, self._takes)


def _synthetic(runtime: ModelRuntime, takes: str) -> Frame:
    wants_image = runtime.image_pre is not None
    if takes == IMAGE or (takes == ANY and wants_image):
        spec = runtime.inputs[0] if runtime.inputs else None
        h, w = SYNTHETIC_SIZE
        if spec is not None and len(spec.shape) == 4:
            nhwc = runtime.manifest.input.layout == "nhwc"
            h, w = (spec.shape[1], spec.shape[2]) if nhwc else (spec.shape[2], spec.shape[3])
        image = np.full((max(h, 1), max(w, 1), 3), 128, np.uint8)
        return Frame(0, time.time(), "proof", image=image)
    spec = runtime.inputs[0]
    return Frame(0, time.time(), "proof", tensor=np.zeros(spec.shape, np.dtype(spec.dtype)))


def _describe(frame: Frame, real: bool) -> str:
    origin = "the source's latest frame" if real else "a stand-in input"
    if frame.image is not None:
        h, w = frame.image.shape[:2]
        return f"{origin} ({w}x{h} image)"
    assert frame.tensor is not None
    return f"{origin} (tensor of shape {list(frame.tensor.shape)})"


def prove(runtime: ModelRuntime, sample: Sample) -> None:
    """Run `runtime` once end to end on the sample; raises ModelRejected saying what failed."""
    frame = sample.frame if sample.frame is not None else _synthetic(runtime, sample.takes)
    what = _describe(frame, sample.frame is not None)
    ref = runtime.manifest.ref
    if (sample.takes == IMAGE and frame.image is None) or (sample.takes == TENSOR and frame.tensor is None):
        raise ModelRejected(f"model {ref} cannot run on this source: it delivers {sample.takes}s")
    stage = "pre-processing"
    try:
        tensor, transform = runtime.preprocess(frame.image, frame.tensor)
        stage = "inference"
        outputs, _ = runtime.run(0, tensor)
        stage = "post-processing"
        runtime.postprocess(outputs, transform)
    except (ApplianceError, ValueError, IndexError, TypeError) as err:
        raise ModelRejected(f"model {ref} does not run on {what}: {stage} failed: {err}") from err
