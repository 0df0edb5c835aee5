"""Synthetic accelerometer windows (float32 [128, 3], in g) for the simulator.

* idle   - sensor noise only (sigma 0.01 g)
* normal - running machine: 30 Hz fundamental + 60 Hz harmonic, ~0.5 g, mild noise
* fault  - damaged machine: ~1.5 g fundamental, strong 170 Hz component and decaying impulses
           (bearing-defect-like ringing at ~12 Hz repetition), heavy noise
"""

from enum import StrEnum

import numpy as np
import numpy.typing as npt

WINDOW = 128
AXES = 3
SAMPLE_RATE_HZ = 400.0

_AXIS_GAIN = np.array([1.0, 0.6, 0.35], dtype=np.float64)
_AXIS_PHASE = np.array([0.0, 0.9, 2.1], dtype=np.float64)


class SensorMode(StrEnum):
    IDLE = "idle"
    NORMAL = "normal"
    FAULT = "fault"
    CYCLE = "cycle"
    """Rotates idle -> normal -> fault (resolved with :func:`cycle_mode`)."""


CYCLE_ORDER = (SensorMode.IDLE, SensorMode.NORMAL, SensorMode.FAULT)


def cycle_mode(elapsed_s: float, period_s: float) -> SensorMode:
    """Concrete mode of the ``cycle`` mode ``elapsed_s`` after start (each mode lasts ``period_s``)."""
    return CYCLE_ORDER[int(elapsed_s // period_s) % len(CYCLE_ORDER)]


def _tone(t: npt.NDArray[np.float64], freq_hz: float, amplitude: float) -> npt.NDArray[np.float64]:
    phase = 2 * np.pi * freq_hz * t[:, None] + _AXIS_PHASE[None, :]
    return amplitude * _AXIS_GAIN[None, :] * np.sin(phase)


def _impulses(t: npt.NDArray[np.float64], rng: np.random.Generator) -> npt.NDArray[np.float64]:
    period = 1 / 12.0
    since = np.mod(t + rng.uniform(0, period), period)
    ringing = 3.0 * np.exp(-since / 0.004) * np.sin(2 * np.pi * 900.0 * since)
    return ringing[:, None] * rng.uniform(0.5, 1.0, size=(1, AXES))


def window(mode: SensorMode, rng: np.random.Generator, start_s: float) -> npt.NDArray[np.float32]:
    """One [WINDOW, AXES] float32 window starting at time ``start_s`` (phase-continuous tones)."""
    t = start_s + np.arange(WINDOW, dtype=np.float64) / SAMPLE_RATE_HZ
    noise_sigma = {SensorMode.IDLE: 0.01, SensorMode.NORMAL: 0.03, SensorMode.FAULT: 0.15}
    if mode not in noise_sigma:
        raise ValueError(f"window() needs idle, normal or fault, got {mode.value}")
    signal = rng.normal(0.0, noise_sigma[mode], size=(WINDOW, AXES))
    if mode is SensorMode.NORMAL:
        signal += _tone(t, 30.0, 0.5) + _tone(t, 60.0, 0.1)
    elif mode is SensorMode.FAULT:
        signal += _tone(t, 30.0, 1.5) + _tone(t, 170.0, 0.8) + _impulses(t, rng)
    return signal.astype(np.float32)
