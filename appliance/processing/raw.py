"""Raw task: the output tensors as they are (dequantised), for models the appliance does not interpret."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from appliance.models.manifest import Manifest
from appliance.processing.inference import Inference, Transform
from appliance.processing.quant import dequantize
from appliance.tensorspec import TensorSpec

MAX_VALUES_STORED = 4096


class RawOutputs:
    def __init__(self, manifest: Manifest, outputs: Sequence[TensorSpec]) -> None:
        self._specs = tuple(outputs)

    def __call__(self, outputs: Sequence[np.ndarray], transform: Transform) -> Inference:
        tensors = []
        for spec, array in zip(self._specs, outputs, strict=True):
            values = dequantize(array, spec)
            tensors.append(
                {
                    "name": spec.name,
                    "shape": list(values.shape),
                    "data": values.reshape(-1)[:MAX_VALUES_STORED].tolist(),
                    "truncated": values.size > MAX_VALUES_STORED,
                }
            )
        return Inference(None, None, None, 0, extra={"outputs": tensors})
