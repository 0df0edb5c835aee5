"""Tensor element types of SENSOR_FRAME and conversion to/from numpy arrays.

Tensor data on the wire is little-endian, row-major (C order), without padding.
"""

from enum import IntEnum
from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt

from firmware_bridge.protocol import MAX_RANK


class DType(IntEnum):
    """Element type codes (u8 on the wire)."""

    U8 = 1
    I8 = 2
    I16 = 3
    U16 = 4
    I32 = 5
    F32 = 6


WIRE_DTYPES: dict[DType, np.dtype[Any]] = {
    DType.U8: np.dtype("<u1"),
    DType.I8: np.dtype("<i1"),
    DType.I16: np.dtype("<i2"),
    DType.U16: np.dtype("<u2"),
    DType.I32: np.dtype("<i4"),
    DType.F32: np.dtype("<f4"),
}
"""Registry: wire dtype code -> little-endian numpy dtype."""

_BY_KIND: dict[tuple[str, int], DType] = {(dt.kind, dt.itemsize): code for code, dt in WIRE_DTYPES.items()}


def itemsize(dtype: DType) -> int:
    """Size of one element in bytes."""
    return WIRE_DTYPES[dtype].itemsize


def expected_size(dtype: DType, shape: tuple[int, ...]) -> int:
    """Number of data bytes a tensor of ``dtype`` and ``shape`` occupies."""
    return itemsize(dtype) * prod(shape)


def dtype_of(array: npt.NDArray[Any]) -> DType:
    """Wire dtype for a numpy array; raises ``ValueError`` for unsupported element types."""
    code = _BY_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        supported = ", ".join(str(dt) for dt in WIRE_DTYPES.values())
        raise ValueError(f"unsupported tensor dtype {array.dtype}; supported: {supported}")
    return code


def array_to_wire(array: npt.NDArray[Any]) -> tuple[DType, tuple[int, ...], bytes]:
    """Return ``(dtype, shape, data)`` for ``array`` (data little-endian, C order)."""
    if not 1 <= array.ndim <= MAX_RANK:
        raise ValueError(f"tensor rank must be 1..{MAX_RANK}, got {array.ndim}")
    code = dtype_of(array)
    data = np.ascontiguousarray(array, dtype=WIRE_DTYPES[code]).tobytes()
    return code, tuple(int(dim) for dim in array.shape), data


def wire_to_array(dtype: DType, shape: tuple[int, ...], data: bytes) -> npt.NDArray[Any]:
    """Return a writable, native-endian numpy array for wire tensor data."""
    wire = WIRE_DTYPES[dtype]
    if len(data) != expected_size(dtype, shape):
        raise ValueError(
            f"tensor data has {len(data)} bytes, shape {shape} of {dtype.name} needs "
            f"{expected_size(dtype, shape)}"
        )
    array = np.frombuffer(data, dtype=wire).reshape(shape)
    return array.astype(wire.newbyteorder("="), copy=True)
