"""A vibration classifier for accelerometer windows on the serial sensor path: `idle`, `normal`, `fault`.

Input: `window` 1x128x3 float32, 128 consecutive samples of the x, y, z acceleration in g.
Output: `probabilities` 1x3 softmax in `LABELS` order.

Graph (features in-graph, head fitted here):
  MEAN over time (keep dims) -> SUB (removes gravity / sensor offset per axis) -> RESHAPE to
  1x128x1x3 -> CONV_2D with fixed taps (3 channels copy x[t], 3 take x[t+1] - x[t]) -> ABS ->
  MEAN over time -> FULLY_CONNECTED with fixed 0/1 weights (sum over axes: level = mean |x - mean|,
  roughness = mean |dx|) -> ADD a small floor -> LOG -> FULLY_CONNECTED (fitted) -> SOFTMAX.
The last FULLY_CONNECTED is a multinomial logistic regression fitted by full-batch gradient descent
in numpy on windows that `make_window` generates from `seed`, so the same seed gives the same bytes.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from appliance.demo.tflite_builder import ConvParams, GraphBuilder, Padding

logger = logging.getLogger(__name__)

LABELS: Final[tuple[str, ...]] = ("idle", "normal", "fault")
WINDOW_SAMPLES: Final = 128
AXES: Final = 3
MODEL_FILE: Final = "vibration.tflite"
LABELS_FILE: Final = "vibration.labels.txt"

# Window generator, amplitudes in g, frequencies in cycles per window.
NOISE_SIGMA_RANGE: Final = (0.005, 0.015)
SENSOR_OFFSET: Final = 0.05  # largest constant bias per axis
NORMAL_AMPLITUDE: Final = (0.2, 0.5)
NORMAL_CYCLES: Final = (2.0, 6.0)
HARMONIC_RATIO: Final = 0.2  # second harmonic of normal running, relative to the fundamental
FAULT_AMPLITUDE: Final = (0.8, 2.0)
FAULT_CYCLES: Final = (20.0, 50.0)
IMPACTS_PER_WINDOW: Final = (4, 10)
IMPACT_RING_FREQUENCY: Final = (0.15, 0.4)  # cycles per sample of the ringing after an impact
IMPACT_DECAY: Final = (0.3, 0.7)  # per sample
FAULT_TONE, FAULT_IMPACTS, FAULT_BOTH = 0, 1, 2

# Features and fit.
FEATURE_FLOOR: Final = 1e-3  # g, keeps LOG finite on a perfectly still sensor
TRAIN_WINDOWS_PER_CLASS: Final = 200
FIT_STEPS: Final = 1500
LEARNING_RATE: Final = 0.5
L2_PENALTY: Final = 1e-4


def _direction(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    vector = rng.normal(size=AXES)
    unit: npt.NDArray[np.float64] = vector / np.linalg.norm(vector)
    return unit


def _tone(rng: np.random.Generator, amplitude: tuple[float, float], cycles: float) -> npt.NDArray[np.float64]:
    """A sinusoid along a random direction [128, 3]."""
    t = np.arange(WINDOW_SAMPLES) / WINDOW_SAMPLES
    wave = rng.uniform(*amplitude) * np.sin(2.0 * math.pi * cycles * t + rng.uniform(0.0, 2.0 * math.pi))
    return np.outer(wave, _direction(rng))


def _normal_running(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    cycles = rng.uniform(*NORMAL_CYCLES)
    low, high = NORMAL_AMPLITUDE
    harmonic = _tone(rng, (HARMONIC_RATIO * low, HARMONIC_RATIO * high), 2.0 * cycles)
    return _tone(rng, NORMAL_AMPLITUDE, cycles) + harmonic


def _impacts(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A train of decaying ringing bursts (a bearing or gear defect) along a random direction [128, 3]."""
    count = int(rng.integers(IMPACTS_PER_WINDOW[0], IMPACTS_PER_WINDOW[1] + 1))
    amplitude, ring = rng.uniform(*FAULT_AMPLITUDE), rng.uniform(*IMPACT_RING_FREQUENCY)
    decay, spacing = rng.uniform(*IMPACT_DECAY), WINDOW_SAMPLES / count
    signal = np.zeros(WINDOW_SAMPLES)
    first = rng.uniform(0.0, spacing)
    for k in range(count):
        start = int(first + k * spacing)
        elapsed = np.arange(WINDOW_SAMPLES - start)
        signal[start:] += amplitude * np.exp(-decay * elapsed) * np.cos(2.0 * math.pi * ring * elapsed)
    return np.outer(signal, _direction(rng))


def _fault(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    kind = int(rng.integers(0, 3))
    motion = np.zeros((WINDOW_SAMPLES, AXES))
    if kind in (FAULT_TONE, FAULT_BOTH):
        motion += _tone(rng, FAULT_AMPLITUDE, rng.uniform(*FAULT_CYCLES))
    if kind in (FAULT_IMPACTS, FAULT_BOTH):
        motion += _impacts(rng) + _normal_running(rng)
    return motion


def make_window(label: str, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """A random [128, 3] float32 window in g of class `label` (with a small constant sensor offset)."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; expected one of {LABELS}")
    window = rng.normal(0.0, rng.uniform(*NOISE_SIGMA_RANGE), size=(WINDOW_SAMPLES, AXES))
    window += rng.uniform(-SENSOR_OFFSET, SENSOR_OFFSET, size=AXES)
    if label == "normal":
        window += _normal_running(rng)
    elif label == "fault":
        window += _fault(rng)
    return window.astype(np.float32)


# -------------------------------------------------------------------- features
def window_features(windows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Numpy reference of the in-graph features for windows [N, 128, 3]: [N, 2] log(level), log(roughness)."""
    centred = windows - windows.mean(axis=1, keepdims=True)
    level = np.abs(centred[:, :-1]).mean(axis=1).sum(axis=1)
    roughness = np.abs(np.diff(centred, axis=1)).mean(axis=1).sum(axis=1)
    return np.log(np.stack([level, roughness], axis=1) + np.float32(FEATURE_FLOOR)).astype(np.float32)


def _feature_taps() -> npt.NDArray[np.float32]:
    """CONV_2D filters [6, 2, 1, 3]: channels 0-2 copy x[t] per axis, 3-5 take x[t+1] - x[t]."""
    taps = np.zeros((2 * AXES, 2, 1, AXES), dtype=np.float32)
    for axis in range(AXES):
        taps[axis, 0, 0, axis] = 1.0
        taps[AXES + axis, 0, 0, axis], taps[AXES + axis, 1, 0, axis] = -1.0, 1.0
    return taps


def _axis_sum() -> npt.NDArray[np.float32]:
    """FULLY_CONNECTED weights [2, 6] summing the level and the roughness channels over the axes."""
    summing: npt.NDArray[np.float32] = np.repeat(np.eye(2, dtype=np.float32), AXES, axis=1)
    return summing


# ------------------------------------------------------------------------- fit
def training_set(seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Features [N, 2] and label indices [N] of the windows the head is fitted on."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(LABELS)), TRAIN_WINDOWS_PER_CLASS)
    windows = np.stack([make_window(LABELS[int(k)], rng) for k in labels])
    return window_features(windows), labels


def fit_softmax_regression(
    features: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Multinomial logistic regression by full-batch gradient descent: weights [C, F] and bias [C].

    Features are standardised for the descent and the scaling is folded back into the result.
    """
    mean, std = features.mean(axis=0), features.std(axis=0) + np.float32(FEATURE_FLOOR)
    x = ((features - mean) / std).astype(np.float64)
    targets = np.eye(len(LABELS))[labels]
    weights, bias = np.zeros((len(LABELS), x.shape[1])), np.zeros(len(LABELS))
    for _ in range(FIT_STEPS):
        logits = x @ weights.T + bias
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        error = probabilities / probabilities.sum(axis=1, keepdims=True) - targets
        weights -= LEARNING_RATE * (error.T @ x / len(x) + L2_PENALTY * weights)
        bias -= LEARNING_RATE * error.mean(axis=0)
    folded = weights / std
    return folded.astype(np.float32), (bias - folded @ mean).astype(np.float32)


# ----------------------------------------------------------------------- model
def build_vibration_model(seed: int = 0) -> bytes:
    """The float32 model `window` [1,128,3] (g) -> `probabilities` [1,3], fitted on windows from `seed`."""
    features, labels = training_set(seed)
    head_weights, head_bias = fit_softmax_regression(features, labels)
    builder = GraphBuilder(f"appliance demo: vibration classifier (idle/normal/fault), seed {seed}")
    window = builder.add_input("window", (1, WINDOW_SAMPLES, AXES))
    centred = builder.sub(window, builder.mean(window, (1,), keep_dims=True, name="offset"), name="centred")
    image = builder.reshape(centred, (1, WINDOW_SAMPLES, 1, AXES), name="centred/nhwc")
    taps = builder.add_constant("taps/filters", _feature_taps())
    tapped = builder.conv_2d(image, taps, params=ConvParams(padding=Padding.VALID), name="taps")
    per_axis = builder.mean(builder.abs(tapped, name="taps/abs"), (1, 2), name="taps/mean")
    summed = builder.fully_connected(per_axis, builder.add_constant("axis_sum", _axis_sum()), name="features")
    floor = builder.add_constant("features/floor", np.full(2, FEATURE_FLOOR, dtype=np.float32))
    log_features = builder.log(builder.add(summed, floor, name="features/floored"), name="features/log")
    logits = builder.fully_connected(
        log_features,
        builder.add_constant("head/weights", head_weights),
        builder.add_constant("head/bias", head_bias),
        name="logits",
    )
    builder.mark_outputs(builder.softmax(logits, name="probabilities"))
    return builder.to_bytes()


def write_model(out_dir: Path) -> dict[str, Path]:
    """Writes vibration.tflite and vibration.labels.txt; returns them by role ("model", "labels")."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"model": out_dir / MODEL_FILE, "labels": out_dir / LABELS_FILE}
    paths["model"].write_bytes(build_vibration_model())
    paths["labels"].write_text("".join(f"{label}\n" for label in LABELS), encoding="utf-8")
    logger.info("wrote the vibration demo model to %s", out_dir)
    return paths
