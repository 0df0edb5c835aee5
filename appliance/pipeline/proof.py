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
from appliance.processing.image import Prepared
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
    def prepare(self, frame: Frame, keep_image: bool = False) -> tuple[Prepared, Frame]: ...
    def invoke(self, worker: int, prepared: Prepared) -> tuple[list[np.ndarray], str]: ...
    def finish(self, outputs: Sequence[np.ndarray], transform: Transform) -> Inference: ...


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
    if frame.encoded is not None:
        return f"{origin} (compressed image of {len(frame.encoded)} bytes)"
    assert frame.tensor is not None
    return f"{origin} (tensor of shape {list(frame.tensor.shape)})"


def prove(runtime: ModelRuntime, sample: Sample) -> None:
    """Run `runtime` once end to end on the sample; raises ModelRejected saying what failed."""
    frame = sample.frame if sample.frame is not None else _synthetic(runtime, sample.takes)
    what = _describe(frame, sample.frame is not None)
    ref = runtime.manifest.ref
    if (sample.takes == IMAGE and not frame.is_image) or (sample.takes == TENSOR and frame.tensor is None):
        raise ModelRejected(f"model {ref} cannot run on this source: it delivers {sample.takes}s")
    stage = "pre-processing"
    try:
        prepared, _ = runtime.prepare(frame)
        stage = "inference"
        outputs, _ = runtime.invoke(0, prepared)
        stage = "post-processing"
        runtime.finish(outputs, prepared.transform)
    except (ApplianceError, ValueError, IndexError, TypeError) as err:
        raise ModelRejected(f"model {ref} does not run on {what}: {stage} failed: {err}") from err
