"""Affine quantisation: real = scale * (q - zero_point)."""

from __future__ import annotations

import numpy as np

from appliance.tensorspec import TensorSpec


def dequantize(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A float32 view of an output tensor (quantised outputs are scaled, float ones returned as they are)."""
    if not spec.quantized:
        return array if array.dtype == np.float32 else array.astype(np.float32)
    return (array.astype(np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)


def quantize_into(values: np.ndarray, spec: TensorSpec, out: np.ndarray) -> np.ndarray:
    """Quantise float values into the preallocated integer array `out` (round, clip to the dtype)."""
    info = np.iinfo(out.dtype)
    np.multiply(values, np.float32(1.0 / spec.scale), out=values)
    np.add(values, np.float32(spec.zero_point), out=values)
    np.rint(values, out=values)
    np.clip(values, info.min, info.max, out=values)
    out[...] = values
    return out
