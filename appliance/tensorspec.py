"""TensorSpec: one model input or output. A plain type that models/, processing/, backends/ and api/ share
(it depends on nothing of theirs, so none of them depends on another for it)."""

from __future__ import annotations

from dataclasses import dataclass

QUANTIZED_DTYPES = ("uint8", "int8", "int16")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape, dtype, and affine quantisation (scale 0 = none)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype in QUANTIZED_DTYPES

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }
