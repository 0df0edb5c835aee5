"""Frame -> model input: decode, resize (stretch or letterbox), colour order, normalisation, quantisation,
layout.

A compressed frame (JPEG bytes) is decoded here, in the preprocess stage, and when the model input is
much smaller than the frame the JPEG decoder downscales in the DCT domain (cv2.IMREAD_REDUCED_COLOR_2/4/8,
the largest factor that still leaves at least the model's input size): a 1080p frame for a 128x128
model is decoded at 240x135 instead of 1920x1080. The resize then picks INTER_LINEAR when it shrinks by
at most 2 (as after a reduced decode: the same quality at a fraction of INTER_AREA's cost) and
INTER_AREA beyond (anti-aliasing that a bilinear filter would not give).

Input tensors come from a pool allocated once per model (`TensorPool`): the preprocess stage takes one,
inference gives it back when the context has run (`Prepared.release`), so the hot path allocates nothing
however many preprocess threads and workers run. Scratch arrays belong to the calling thread.
A uint8 input with mean 0 / std 1 (an .rknn with mean/std folded in) gets the resized pixels as they
are: no float buffer, no normalisation.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.errors import ImageRejected, ModelRejected
from appliance.models.manifest import InputSpec
from appliance.processing.inference import Transform
from appliance.processing.quant import quantize_into
from appliance.tensorspec import TensorSpec

logger = logging.getLogger(__name__)

PAD_VALUE = 0
LINEAR_UP_TO = 2.0  # shrinking by at most this much: INTER_LINEAR; more: INTER_AREA
REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame: holds the image size


def jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding; None if not a JPEG."""
    view = memoryview(data)
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        return None
    at = 2
    while at + 9 <= len(view):
        if view[at] != 0xFF:
            return None
        marker = view[at + 1]
        if marker in SOF_MARKERS:
            height = (view[at + 5] << 8) | view[at + 6]
            width = (view[at + 7] << 8) | view[at + 8]
            return (width, height) if width and height else None
        at += 2 + ((view[at + 2] << 8) | view[at + 3])
    return None


def reduction(size: tuple[int, int] | None, target: tuple[int, int]) -> int:
    """The largest DCT downscale (8, 4, 2; 1 = none) that keeps the frame at least as large as the model
    input in both dimensions, whatever the EXIF orientation (hence the shorter side vs the longer)."""
    if size is None:
        return 1
    ratio = min(size) / max(target)
    return next((factor for factor, _ in REDUCED if factor <= ratio), 1)


def decode(data: bytes | memoryview, target: tuple[int, int] | None = None) -> np.ndarray:
    """A BGR image from compressed bytes; `target` (height, width): decode just large enough for it."""
    buffer = np.frombuffer(data, np.uint8)
    factor = reduction(jpeg_size(data), target) if target is not None else 1
    flag = dict(REDUCED).get(factor, cv2.IMREAD_COLOR)
    image = cv2.imdecode(buffer, flag) if buffer.size else None
    if image is None:
        raise ImageRejected("image could not be decoded (truncated or corrupt; JPEG, PNG or BMP expected)")
    return image


class TensorPool:
    """Input tensors of one shape, allocated up front and reused; thread-safe. An empty pool allocates
    (and counts it): more tensors in flight than planned cost an allocation, never a shared buffer."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype[np.generic], size: int) -> None:
        self.shape, self.dtype = shape, dtype
        self._free = [np.zeros(shape, dtype) for _ in range(max(size, 1))]
        self._lock = threading.Lock()
        self.grown = 0

    def take(self) -> np.ndarray:
        with self._lock:
            if self._free:
                return self._free.pop()
            self.grown += 1
            grown = self.grown
        if grown in (1, 10, 100, 1000):
            logger.warning(
                "input tensor pool %s grew %d times: more in flight than planned", self.shape, grown
            )
        return np.zeros(self.shape, self.dtype)

    def give(self, tensor: np.ndarray) -> None:
        with self._lock:
            self._free.append(tensor)


def _keep(_: np.ndarray) -> None:
    """Release of a tensor the caller owns (not pooled)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A model input ready to run: the tensor, how to map results back, and how to hand the tensor back
    once the context has run (to the pool it came from, if any)."""

    tensor: np.ndarray
    transform: Transform
    give_back: Callable[[np.ndarray], None] = _keep

    def release(self) -> None:
        self.give_back(self.tensor)


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


class _Scratch:
    """Scratch space for one preprocessing call, one per thread, reused."""

    def __init__(self, geo: Geometry, raw: bool) -> None:
        hw = (geo.height, geo.width)
        self.resized = np.zeros((*hw, 3), np.uint8)
        self.colour = np.zeros((*hw, 3), np.uint8)
        # raw pixels (mean/std folded into the model) never pass through float
        self.values = np.zeros((0,), np.float32) if raw else np.zeros((*hw, geo.channels), np.float32)


class Preprocessor:
    """Turns BGR uint8 frames (or compressed ones) into the tensor one model input expects. `ring`: the
    tensors allocated up front (more than can be in flight from the preprocess stage to inference)."""

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
        self.pool = TensorPool(shape, np.dtype(spec.dtype), ring)
        self._local = threading.local()

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return self.geometry.height, self.geometry.width

    def _scratch(self) -> _Scratch:
        scratch: _Scratch | None = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = _Scratch(self.geometry, self.raw)
        return scratch

    def _resize(self, image: np.ndarray, buf: _Scratch) -> Transform:
        geo = self.geometry
        src_h, src_w = image.shape[:2]
        if self.options.resize == "stretch":
            how = _interpolation(src_w / geo.width, src_h / geo.height)
            cv2.resize(image, (geo.width, geo.height), dst=buf.resized, interpolation=how)
            return Transform(
                src_w, src_h, geo.width / src_w, geo.height / src_h, 0.0, 0.0, geo.width, geo.height
            )
        scale = min(geo.width / src_w, geo.height / src_h)
        new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
        pad_x, pad_y = (geo.width - new_w) // 2, (geo.height - new_h) // 2
        buf.resized.fill(PAD_VALUE)
        target = buf.resized[pad_y : pad_y + new_h, pad_x : pad_x + new_w]
        how = _interpolation(src_w / new_w, src_h / new_h)
        cv2.resize(image, (new_w, new_h), dst=target, interpolation=how)
        return Transform(src_w, src_h, scale, scale, float(pad_x), float(pad_y), geo.width, geo.height)

    def _colour(self, buf: _Scratch) -> np.ndarray:
        if self.options.color == "rgb":
            cv2.cvtColor(buf.resized, cv2.COLOR_BGR2RGB, dst=buf.colour)
            return buf.colour
        if self.options.color == "gray":
            return cv2.cvtColor(buf.resized, cv2.COLOR_BGR2GRAY)[..., None]
        return buf.resized

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """A new tensor for `image`, owned by the caller (tools, conversion, inspection crops)."""
        self._check(image)
        tensor = np.zeros(self.pool.shape, self.pool.dtype)
        return tensor, self._fill(image, tensor)

    def prepare_encoded(self, data: bytes | memoryview) -> Prepared:
        """The tensor for a compressed image, decoded just large enough for this model's input; the
        transform maps back to the full-size image's pixels."""
        size = jpeg_size(data)
        image = decode(data, self.size)
        prepared = self.prepare(image)
        if size is None or size == (image.shape[1], image.shape[0]):
            return prepared
        return dataclasses.replace(prepared, transform=_to_full(prepared.transform, size))

    def prepare(self, image: np.ndarray) -> Prepared:
        """The tensor for `image`, from the pool: `release()` it once the context has run."""
        self._check(image)
        tensor = self.pool.take()
        try:
            transform = self._fill(image, tensor)
        except BaseException:
            self.pool.give(tensor)
            raise
        return Prepared(tensor, transform, self.pool.give)

    @staticmethod
    def _check(image: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ImageRejected(
                f"frame must be a non-empty HxWx3 uint8 BGR image, got {image.shape} {image.dtype}"
            )

    def _fill(self, image: np.ndarray, tensor: np.ndarray) -> Transform:
        buf = self._scratch()
        transform = self._resize(image, buf)
        pixels = self._colour(buf)
        target = tensor[0]
        if self.geometry.nchw:
            target = target.transpose(1, 2, 0)
        if self.raw:
            np.copyto(target, pixels)
            return transform
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
        return transform


def _to_full(transform: Transform, size: tuple[int, int]) -> Transform:
    """`transform` (for a reduced decode) for the full-size image of `size` (width, height, as the JPEG
    header says: swapped when EXIF orientation turned the decoded image)."""
    width, height = size
    if (transform.src_w > transform.src_h) != (width > height):
        width, height = height, width
    fx, fy = transform.src_w / width, transform.src_h / height
    return dataclasses.replace(
        transform, src_w=width, src_h=height, scale_x=transform.scale_x * fx, scale_y=transform.scale_y * fy
    )


def _interpolation(shrink_x: float, shrink_y: float) -> int:
    return cv2.INTER_LINEAR if max(shrink_x, shrink_y) <= LINEAR_UP_TO else cv2.INTER_AREA
