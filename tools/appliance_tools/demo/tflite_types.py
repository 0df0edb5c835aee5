"""Value types of the TFLite graph builder: dtypes, quantisation, tensors and operator parameters."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema


class DType(enum.Enum):
    """Tensor element types the builder supports."""

    FLOAT32 = "float32"
    UINT8 = "uint8"
    INT8 = "int8"
    INT32 = "int32"

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.value).newbyteorder("<")

    @property
    def tflite_type(self) -> int:
        return int(getattr(schema.TensorType, self.name))

    @property
    def is_quantized(self) -> bool:
        return self in (DType.UINT8, DType.INT8)


class Padding(enum.Enum):
    SAME = "SAME"
    VALID = "VALID"


class Activation(enum.Enum):
    """Fused activation of CONV_2D and FULLY_CONNECTED."""

    NONE = "NONE"
    RELU = "RELU"
    RELU6 = "RELU6"


@dataclass(frozen=True)
class Quantization:
    """Per-tensor affine quantisation: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0.0):
            raise ValueError(f"quantization scale must be finite and > 0, got {self.scale}")


@dataclass(frozen=True)
class Tensor:
    """A handle to a tensor of the graph being built."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quantization: Quantization | None = None


@dataclass(frozen=True)
class ConvParams:
    """Options of CONV_2D: stride (height, width), padding, fused activation, quantised output's range."""

    stride: tuple[int, int] = (1, 1)
    padding: Padding = Padding.SAME
    activation: Activation = Activation.NONE
    quantization: Quantization | None = None


@dataclass(frozen=True)
class DenseParams:
    """Options of FULLY_CONNECTED: fused activation and the quantised output's range."""

    activation: Activation = Activation.NONE
    quantization: Quantization | None = None
