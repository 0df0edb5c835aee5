"""Frame -> model input: resize (stretch or letterbox), colour order, normalisation, quantisation, layout.

Buffers are allocated once per model and reused in a ring, so the hot path allocates nothing: the ring
holds more buffers than can be in flight between the preprocess stage and the end of inference.
A uint8 input with mean 0 / std 1 (an .rknn with mean/std folded in) gets the resized pixels as they
are: no float buffer, no normalisation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.errors import ImageRejected, ModelRejected
from appliance.models.manifest import InputSpec
from appliance.processing.inference import Transform
from appliance.processing.quant import quantize_into
from appliance.tensorspec import TensorSpec

PAD_VALUE = 0


@dataclass(frozen=True)
class Geometry:
    """Model input size and layout, read from the tensor shape."""

    height: int
    width: int
    channels: int
    nchw: bool

    @classmethod
    def of(cls, spec: TensorSpec, layout: str) -> Geometry:
        if len(spec.shape) != 4 or spec.shape[0] != 1:
            raise ModelRejected(
                f"input {spec.name!r} has shape {list(spec.shape)}; an image input is 1xHxWxC"
            )
        if layout == "nchw":
            _, c, h, w = spec.shape
        else:
            _, h, w, c = spec.shape
        if c not in (1, 3):
            raise ModelRejected(f"input {spec.name!r} has {c} channels; 1 or 3 expected (layout {layout})")
        return cls(h, w, c, layout == "nchw")


class _Buffers:
    """Scratch space for one preprocessing call, plus the output tensor that travels to inference.

    Only the tensor must outlive the call, so only tensors are kept in the ring; the scratch arrays
    belong to the calling thread (one per thread, reused)."""

    def __init__(self, geo: Geometry, tensor: np.ndarray, raw: bool) -> None:
        hw = (geo.height, geo.width)
        self.resized = np.zeros((*hw, 3), np.uint8)
        self.colour = np.zeros((*hw, 3), np.uint8)
        # raw pixels (mean/std folded into the model) never pass through float
        self.values = np.zeros((0,), np.float32) if raw else np.zeros((*hw, geo.channels), np.float32)
        self.tensor = tensor


class Preprocessor:
    """Turns BGR uint8 frames into the tensor one model input expects."""

    def __init__(self, spec: TensorSpec, options: InputSpec, ring: int) -> None:
        self.spec = spec
        self.options = options
        self.geometry = Geometry.of(spec, options.layout)
        if spec.dtype not in ("float32", "uint8", "int8"):
            raise ModelRejected(f"input dtype {spec.dtype} is not supported (float32, uint8, int8)")
        channels = self.geometry.channels
        mean = [float(v) for v in options.mean][:channels] * (channels if len(options.mean) == 1 else 1)
        inv_std = [1.0 / float(v) for v in options.std][:channels] * (
            channels if len(options.std) == 1 else 1
        )
        # One value for every channel (the usual case) is 10x faster as a numpy scalar than broadcast.
        self._uniform = len(set(mean)) == 1 and len(set(inv_std)) == 1
        # uint8 input and no normalisation (mean/std folded into an .rknn): pixels go in as they are
        self.raw = (
            spec.dtype == "uint8" and not spec.quantized and set(mean) == {0.0} and set(inv_std) == {1.0}
        )
        self._mean_scalar, self._inv_scalar = np.float32(mean[0]), np.float32(inv_std[0])
        self._mean_4 = (*mean, *[0.0] * (4 - channels))
        self._inv_4 = (*inv_std, *[0.0] * (4 - channels))
        geo = self.geometry
        shape = (
            (1, geo.channels, geo.height, geo.width) if geo.nchw else (1, geo.height, geo.width, geo.channels)
        )
        self._ring = [np.zeros(shape, np.dtype(spec.dtype)) for _ in range(max(ring, 1))]
        self._next = 0
        self._lock = threading.Lock()
        self._scratch = threading.local()

    def _take(self) -> _Buffers:
        with self._lock:
            tensor = self._ring[self._next]
            self._next = (self._next + 1) % len(self._ring)
        buffers: _Buffers | None = getattr(self._scratch, "buffers", None)
        if buffers is None:
            buffers = self._scratch.buffers = _Buffers(self.geometry, tensor, self.raw)
        buffers.tensor = tensor
        return buffers

    def _resize(self, image: np.ndarray, buf: _Buffers) -> Transform:
        geo = self.geometry
        src_h, src_w = image.shape[:2]
        if self.options.resize == "stretch":
            cv2.resize(image, (geo.width, geo.height), dst=buf.resized, interpolation=cv2.INTER_AREA)
            return Transform(
                src_w, src_h, geo.width / src_w, geo.height / src_h, 0.0, 0.0, geo.width, geo.height
            )
        scale = min(geo.width / src_w, geo.height / src_h)
        new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
        pad_x, pad_y = (geo.width - new_w) // 2, (geo.height - new_h) // 2
        buf.resized.fill(PAD_VALUE)
        target = buf.resized[pad_y : pad_y + new_h, pad_x : pad_x + new_w]
        cv2.resize(image, (new_w, new_h), dst=target, interpolation=cv2.INTER_AREA)
        return Transform(src_w, src_h, scale, scale, float(pad_x), float(pad_y), geo.width, geo.height)

    def _colour(self, buf: _Buffers) -> np.ndarray:
        if self.options.color == "rgb":
            cv2.cvtColor(buf.resized, cv2.COLOR_BGR2RGB, dst=buf.colour)
            return buf.colour
        if self.options.color == "gray":
            return cv2.cvtColor(buf.resized, cv2.COLOR_BGR2GRAY)[..., None]
        return buf.resized

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ImageRejected(
                f"frame must be a non-empty HxWx3 uint8 BGR image, got {image.shape} {image.dtype}"
            )
        buf = self._take()
        transform = self._resize(image, buf)
        pixels = self._colour(buf)
        target = buf.tensor[0]
        if self.geometry.nchw:
            target = target.transpose(1, 2, 0)
        if self.raw:
            np.copyto(target, pixels)
            return buf.tensor, transform
        values = buf.values
        np.copyto(values, pixels, casting="unsafe")
        if self._uniform:
            np.subtract(values, self._mean_scalar, out=values)
            np.multiply(values, self._inv_scalar, out=values)
        else:
            # OpenCV takes a per-channel Scalar as a 4-tuple; its type stubs do not say so.
            cv2.subtract(values, self._mean_4, dst=values)  # type: ignore[call-overload]
            cv2.multiply(values, self._inv_4, dst=values)  # type: ignore[call-overload]
        if self.spec.quantized:
            quantize_into(values, self.spec, target)
        else:
            target[...] = values
        return buf.tensor, transform
