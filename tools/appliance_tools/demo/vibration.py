"""A vibration classifier for accelerometer windows on the serial sensor path: `idle`, `normal`, `fault`.

Input: `window` 1x128x3 float32, 128 consecutive samples of the x, y, z acceleration in g.
Output: `probabilities` 1x3 softmax in `LABELS` order.

Graph (features in-graph, head fitted here):
  MEAN over time (keep dims) -> SUB (removes gravity / sensor offset per axis) -> RESHAPE to
  1x128x1x3 -> CONV_2D with fixed taps (3 channels copy x[t], 3 take x[t+1] - x[t], 3 take
  x[t+2] - 2 x[t+1] + x[t]) -> ABS -> MEAN over time -> FULLY_CONNECTED with fixed 0/1 weights (sum
  over axes: level = mean |x - mean|, roughness = mean |dx|, curvature = mean |d2x|) -> ADD a small
  floor -> LOG -> FULLY_CONNECTED (fitted) -> SOFTMAX. Curvature separates impact ringing (high
  frequency) from a strong low-frequency running tone of the same level.
The last FULLY_CONNECTED is a multinomial logistic regression fitted by full-batch gradient descent
in numpy on windows generated from `seed` (so the same seed gives the same bytes): the generic machine
model of `make_window`, plus the windows the serial demo device (`firmware_bridge.simulator`, via
`firmware_bridge.waveform`) sends in its idle, normal and fault modes, so `make run-serial` rejects only
faults. The normal-running range covers 2-12 cycles per window (at 400 Hz: up to ~37 Hz, the
simulator's 30 Hz machine is ~9.6 cycles per window).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from firmware_bridge.waveform import SensorMode
from firmware_bridge.waveform import window as device_window

from appliance_tools.demo.tflite_builder import ConvParams, GraphBuilder, Padding

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
NORMAL_CYCLES: Final = (2.0, 12.0)
HARMONIC_RATIO: Final = 0.2  # second harmonic of normal running, relative to the fundamental
FAULT_AMPLITUDE: Final = (0.8, 2.0)
FAULT_CYCLES: Final = (20.0, 50.0)
IMPACTS_PER_WINDOW: Final = (4, 10)
IMPACT_RING_FREQUENCY: Final = (0.15, 0.4)  # cycles per sample of the ringing after an impact
IMPACT_DECAY: Final = (0.3, 0.7)  # per sample
FAULT_TONE, FAULT_IMPACTS, FAULT_BOTH = 0, 1, 2

# Features and fit.
TAP_LENGTH: Final = 3
FEATURES: Final = 3
FEATURE_FLOOR: Final = 1e-3  # g, keeps LOG finite on a perfectly still sensor
TRAIN_WINDOWS_PER_CLASS: Final = 200
DEVICE_WINDOWS_PER_CLASS: Final = 100  # from the demo device's generator, at random start times
DEVICE_MODES: Final = (SensorMode.IDLE, SensorMode.NORMAL, SensorMode.FAULT)  # in LABELS order
DEVICE_SPAN_S: Final = 3600.0
FIT_STEPS: Final = 3000
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
    """Numpy reference of the in-graph features for windows [N, 128, 3]: [N, 3] log of level,
    roughness and curvature (over the VALID conv span of 126 samples)."""
    centred = windows - windows.mean(axis=1, keepdims=True)
    span = WINDOW_SAMPLES - TAP_LENGTH + 1
    level = np.abs(centred[:, :span]).mean(axis=1).sum(axis=1)
    roughness = np.abs(np.diff(centred, axis=1)[:, :span]).mean(axis=1).sum(axis=1)
    curvature = np.abs(np.diff(centred, n=2, axis=1)[:, :span]).mean(axis=1).sum(axis=1)
    stacked = np.stack([level, roughness, curvature], axis=1)
    return np.log(stacked + np.float32(FEATURE_FLOOR)).astype(np.float32)


def _feature_taps() -> npt.NDArray[np.float32]:
    """CONV_2D filters [9, 3, 1, 3]: per axis, x[t]; x[t+1] - x[t]; x[t+2] - 2 x[t+1] + x[t]."""
    kernels = ((1.0, 0.0, 0.0), (-1.0, 1.0, 0.0), (1.0, -2.0, 1.0))
    taps = np.zeros((len(kernels) * AXES, TAP_LENGTH, 1, AXES), dtype=np.float32)
    for k, kernel in enumerate(kernels):
        for axis in range(AXES):
            taps[k * AXES + axis, :, 0, axis] = kernel
    return taps


def _axis_sum() -> npt.NDArray[np.float32]:
    """FULLY_CONNECTED weights [3, 9] summing each feature's channels over the axes."""
    summing: npt.NDArray[np.float32] = np.repeat(np.eye(FEATURES, dtype=np.float32), AXES, axis=1)
    return summing


# ------------------------------------------------------------------------- fit
def training_set(seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Features [N, 3] and label indices [N] of the windows the head is fitted on."""
    rng = np.random.default_rng(seed)
    generic = np.repeat(np.arange(len(LABELS)), TRAIN_WINDOWS_PER_CLASS)
    device = np.repeat(np.arange(len(LABELS)), DEVICE_WINDOWS_PER_CLASS)
    windows = [make_window(LABELS[int(k)], rng) for k in generic]
    windows += [device_window(DEVICE_MODES[int(k)], rng, rng.uniform(0.0, DEVICE_SPAN_S)) for k in device]
    return window_features(np.stack(windows)), np.concatenate([generic, device])


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
    floor = builder.add_constant("features/floor", np.full(FEATURES, FEATURE_FLOOR, dtype=np.float32))
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
