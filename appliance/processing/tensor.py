"""Tensor frames (from a serial sensor or the API) -> model input: shape check, cast or quantise."""

from __future__ import annotations

import numpy as np

from appliance.errors import BadRequest
from appliance.processing.inference import Transform
from appliance.processing.quant import quantize_into
from appliance.tensorspec import TensorSpec

IDENTITY = Transform(1, 1, 1.0, 1.0, 0.0, 0.0, 1, 1)


class TensorPreprocessor:
    """Accepts arrays whose element count matches the input; reshapes, casts or quantises them."""

    def __init__(self, spec: TensorSpec) -> None:
        self.spec = spec
        self._size = int(np.prod(spec.shape))

    def __call__(self, tensor: np.ndarray) -> tuple[np.ndarray, Transform]:
        if tensor.size != self._size:
            raise BadRequest(
                f"tensor of shape {list(tensor.shape)} does not fit model input {self.spec.name!r} "
                f"of shape {list(self.spec.shape)}"
            )
        target = np.empty(self.spec.shape, np.dtype(self.spec.dtype))
        values = tensor.reshape(self.spec.shape)
        if self.spec.quantized and not np.issubdtype(values.dtype, np.integer):
            quantize_into(values.astype(np.float32), self.spec, target)
        else:
            target[...] = values
        return target, IDENTITY
