"""A surface classifier the project builds itself: `blank`, `horizontal_stripes`, `vertical_stripes`.

Think of a web-inspection or scratch-direction check. Horizontal stripes run left to right, so the
image changes from row to row; vertical stripes run top to bottom and change from column to column.

Input: 1x64x64x3, NHWC, RGB, value = pixel / 255 (in manifest terms mean 0, std 255; "mean 0, std 1
over value/255"). Output: 1x3 softmax probabilities in `LABELS` order.

Graph: CONV_2D with fixed gradient kernels (for each colour channel: a row-smoothed forward difference
along x and along y, each with + and - sign, 12 filters, VALID padding) -> RELU -> MEAN over H, W
(so each feature is a mean one-sided gradient magnitude) -> FULLY_CONNECTED -> SOFTMAX. The head is
designed, not trained: with Sx, Sy the summed x and y gradient energies, the logits are
k*(Sy - Sx) for horizontal, k*(Sx - Sy) for vertical and a constant k*t for blank. The threshold t
is the geometric midpoint between the largest |Sx - Sy| of blank samples and the smallest of striped
samples that this module generates with a fixed seed; k makes p(blank) = 0.96 for a flat image.

The uint8 variant takes uint8 pixels (scale 1/255, zero point 0), DEQUANTIZEs them, runs the same
float graph and QUANTIZEs the probabilities to uint8 (scale 1/256, zero point 0).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from appliance_tools.demo.tflite_builder import (
    ConvParams,
    DType,
    GraphBuilder,
    Padding,
    Quantization,
    Tensor,
)

logger = logging.getLogger(__name__)

LABELS: Final[tuple[str, ...]] = ("blank", "horizontal_stripes", "vertical_stripes")
INPUT_SIZE: Final = 64
CHANNELS: Final = 3
PIXEL_MAX: Final = 255.0
INPUT_QUANT: Final = Quantization(1.0 / PIXEL_MAX, 0)
OUTPUT_QUANT: Final = Quantization(1.0 / 256.0, 0)
MODEL_FILE: Final = "stripes.tflite"
MODEL_UINT8_FILE: Final = "stripes_uint8.tflite"
LABELS_FILE: Final = "stripes.labels.txt"

# Sample generator: colours and intensities are in [0, 1], lengths in pixels.
BASE_COLOUR_RANGE: Final = (0.1, 0.9)
MIN_CONTRAST_L1: Final = 0.3  # summed |colour difference| over R, G, B between the two stripe colours
MIN_CONTRAST_MAX: Final = 0.15  # ... and at least this much in one channel
PERIOD_RANGE: Final = (3.0, 24.0)
SHARPNESS_RANGE: Final = (1.0, 8.0)  # 1: sinusoidal profile; larger: square-ish edges
DUTY_SHIFT: Final = 0.5
ANGLE_JITTER_DEG: Final = 5.0
ILLUMINATION_GRADIENT: Final = 0.15  # largest relative brightness change across the image
NOISE_SIGMA_RANGE: Final = (0.0, 0.04)
MAX_BLOTCHES: Final = 3  # faint round stains on any surface
BLOTCH_RADIUS_RANGE: Final = (4.0, 16.0)
BLOTCH_AMPLITUDE: Final = 0.06

# Designed head.
SMOOTHING: Final = (0.25, 0.5, 0.25)
KERNEL_SIZE: Final = 3
FILTERS_PER_CHANNEL: Final = 4  # +x, -x, +y, -y
BLANK_LOGIT: Final = 4.0  # flat image: p(blank) = e^4 / (e^4 + 2) ~ 0.96
CALIBRATION_SEED: Final = 20_240_601
CALIBRATION_SAMPLES: Final = 60  # per class


@dataclass(frozen=True)
class HeadParameters:
    """The designed head: blank below the threshold, logits scaled by the gain."""

    threshold: float  # |Sx - Sy| below which an image is blank
    gain: float  # logit units per unit of Sx - Sy


def gradient_filters() -> npt.NDArray[np.float32]:
    """The 12 CONV_2D filters [out, kh, kw, in]: per channel +dx, -dx, +dy, -dy (forward differences)."""
    smooth = np.array(SMOOTHING, dtype=np.float32)
    dx = np.zeros((KERNEL_SIZE, KERNEL_SIZE), dtype=np.float32)
    dx[:, 1], dx[:, 2] = -smooth, smooth
    filters = np.zeros((CHANNELS * FILTERS_PER_CHANNEL, KERNEL_SIZE, KERNEL_SIZE, CHANNELS), dtype=np.float32)
    for channel in range(CHANNELS):
        for k, kernel in enumerate((dx, -dx, dx.T, -dx.T)):
            filters[channel * FILTERS_PER_CHANNEL + k, :, :, channel] = kernel
    return filters


def gradient_features(images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Numpy reference of CONV_2D(VALID) -> RELU -> MEAN for images [N, H, W, 3] in [0, 1]: [N, 12]."""
    rows, cols = images.shape[1] - KERNEL_SIZE + 1, images.shape[2] - KERNEL_SIZE + 1
    grad_x = sum(
        w * (images[:, r : r + rows, 2 : 2 + cols] - images[:, r : r + rows, 1 : 1 + cols])
        for r, w in enumerate(SMOOTHING)
    )
    grad_y = sum(
        w * (images[:, 2 : 2 + rows, q : q + cols] - images[:, 1 : 1 + rows, q : q + cols])
        for q, w in enumerate(SMOOTHING)
    )
    parts = [np.maximum(g, 0.0).mean(axis=(1, 2)) for g in (grad_x, -grad_x, grad_y, -grad_y)]
    return np.stack(parts, axis=-1).reshape(len(images), -1).astype(np.float32)


def _direction_matrix() -> npt.NDArray[np.float32]:
    """[2, 12]: row 0 sums the x-gradient features (Sx), row 1 the y-gradient ones (Sy)."""
    is_x = np.tile(np.array([1, 1, 0, 0], dtype=np.float32), CHANNELS)
    return np.stack([is_x, 1.0 - is_x])


def normalise(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """An HxWx3 uint8 RGB image as the float model's 1xHxWx3 input."""
    return (image.astype(np.float32) / np.float32(PIXEL_MAX))[np.newaxis]


# ----------------------------------------------------------------------- samples
def _stripe_colours(rng: np.random.Generator) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    base = rng.uniform(*BASE_COLOUR_RANGE, size=CHANNELS)
    while True:
        other = rng.uniform(0.0, 1.0, size=CHANNELS)
        diff = np.abs(other - base)
        if diff.sum() >= MIN_CONTRAST_L1 and diff.max() >= MIN_CONTRAST_MAX:
            return base, other


def _stripe_profile(label: str, rng: np.random.Generator, size: int) -> npt.NDArray[np.float64]:
    """Stripe mix weight in [0, 1] per pixel [size, size]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = math.radians(rng.uniform(-ANGLE_JITTER_DEG, ANGLE_JITTER_DEG))
    across = (yy, xx) if label == "horizontal_stripes" else (xx, yy)
    position = across[0] * math.cos(angle) + across[1] * math.sin(angle)
    period, phase = rng.uniform(*PERIOD_RANGE), rng.uniform(0.0, 2.0 * math.pi)
    wave = np.sin(2.0 * math.pi * position / period + phase) + rng.uniform(-DUTY_SHIFT, DUTY_SHIFT)
    profile: npt.NDArray[np.float64] = np.clip(wave * rng.uniform(*SHARPNESS_RANGE), -1.0, 1.0) * 0.5 + 0.5
    return profile


def _surface_shading(rng: np.random.Generator, size: int) -> npt.NDArray[np.float64]:
    """Multiplicative illumination ramp plus faint round blotches [size, size]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    direction = rng.uniform(0.0, 2.0 * math.pi)
    ramp = ((xx - size / 2) * math.cos(direction) + (yy - size / 2) * math.sin(direction)) / size
    shading: npt.NDArray[np.float64] = 1.0 + rng.uniform(-ILLUMINATION_GRADIENT, ILLUMINATION_GRADIENT) * ramp
    for _ in range(rng.integers(0, MAX_BLOTCHES + 1)):
        cy, cx = rng.uniform(0, size, size=2)
        radius = rng.uniform(*BLOTCH_RADIUS_RANGE)
        blotch = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * radius**2))
        shading += rng.uniform(-BLOTCH_AMPLITUDE, BLOTCH_AMPLITUDE) * blotch
    return shading


def make_sample(label: str, rng: np.random.Generator, size: int = INPUT_SIZE) -> npt.NDArray[np.uint8]:
    """A random size x size x 3 uint8 RGB surface image of class `label`."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; expected one of {LABELS}")
    if label == "blank":
        image = np.broadcast_to(rng.uniform(*BASE_COLOUR_RANGE, size=CHANNELS), (size, size, CHANNELS))
    else:
        base, other = _stripe_colours(rng)
        image = base + _stripe_profile(label, rng, size)[..., np.newaxis] * (other - base)
    image = image * _surface_shading(rng, size)[..., np.newaxis]
    image = image + rng.normal(0.0, rng.uniform(*NOISE_SIGMA_RANGE), size=image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * PIXEL_MAX).astype(np.uint8)


# -------------------------------------------------------------------------- model
@functools.cache
def head_parameters() -> HeadParameters:
    """Threshold and gain of the designed head, calibrated on samples generated with a fixed seed."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    margins: dict[str, npt.NDArray[np.float32]] = {}
    for label in LABELS:
        images = np.stack([make_sample(label, rng) for _ in range(CALIBRATION_SAMPLES)])
        energy = gradient_features(images.astype(np.float32) / np.float32(PIXEL_MAX)) @ _direction_matrix().T
        margins[label] = np.abs(energy[:, 0] - energy[:, 1])
    blank_max = float(margins["blank"].max())
    stripes_min = float(min(margins[label].min() for label in LABELS[1:]))
    if blank_max >= stripes_min:
        raise RuntimeError(
            f"stripes: calibration classes overlap (blank {blank_max:.4g} >= {stripes_min:.4g})"
        )
    threshold = math.sqrt(blank_max * stripes_min)
    logger.debug(
        "stripes head: blank margin <= %.4g, stripes >= %.4g, threshold %.4g",
        blank_max,
        stripes_min,
        threshold,
    )
    return HeadParameters(threshold=threshold, gain=BLANK_LOGIT / threshold)


def head_weights() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """FULLY_CONNECTED weights [3, 12] and bias [3] in LABELS order."""
    head = head_parameters()
    sx, sy = _direction_matrix()
    weights = head.gain * np.stack([np.zeros_like(sx), sy - sx, sx - sy])
    bias = np.array([head.gain * head.threshold, 0.0, 0.0])
    return weights.astype(np.float32), bias.astype(np.float32)


def _classifier(builder: GraphBuilder, image: Tensor, output_name: str) -> Tensor:
    """The float graph from a [1,64,64,3] image in [0, 1] to the [1,3] softmax probabilities."""
    filters = builder.add_constant("gradient/filters", gradient_filters())
    gradients = builder.conv_2d(image, filters, params=ConvParams(padding=Padding.VALID), name="gradient")
    energies = builder.mean(builder.relu(gradients, name="gradient/relu"), (1, 2), name="gradient/mean")
    weights, bias = head_weights()
    logits = builder.fully_connected(
        energies,
        builder.add_constant("head/weights", weights),
        builder.add_constant("head/bias", bias),
        name="logits",
    )
    return builder.softmax(logits, name=output_name)


def build_stripes_model() -> bytes:
    """The float32 model: input `image` [1,64,64,3] float32 in [0,1], output `probabilities` [1,3]."""
    builder = GraphBuilder("appliance demo: surface stripes direction classifier (float32)")
    image = builder.add_input("image", (1, INPUT_SIZE, INPUT_SIZE, CHANNELS))
    builder.mark_outputs(_classifier(builder, image, "probabilities"))
    return builder.to_bytes()


def build_stripes_model_uint8() -> bytes:
    """The quantised model: uint8 `image` (scale 1/255, zp 0) in, uint8 `probabilities` (1/256, 0) out."""
    builder = GraphBuilder("appliance demo: surface stripes direction classifier (uint8 in/out)")
    image = builder.add_input("image", (1, INPUT_SIZE, INPUT_SIZE, CHANNELS), DType.UINT8, INPUT_QUANT)
    probabilities = _classifier(builder, builder.dequantize(image, name="image/float"), "probabilities/float")
    builder.mark_outputs(builder.quantize(probabilities, DType.UINT8, OUTPUT_QUANT, name="probabilities"))
    return builder.to_bytes()


def write_models(out_dir: Path) -> dict[str, Path]:
    """Writes stripes.tflite, stripes_uint8.tflite and stripes.labels.txt; returns them by role."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "model": out_dir / MODEL_FILE,
        "model_uint8": out_dir / MODEL_UINT8_FILE,
        "labels": out_dir / LABELS_FILE,
    }
    paths["model"].write_bytes(build_stripes_model())
    paths["model_uint8"].write_bytes(build_stripes_model_uint8())
    paths["labels"].write_text("".join(f"{label}\n" for label in LABELS), encoding="utf-8")
    logger.info("wrote stripes demo models to %s", out_dir)
    return paths
