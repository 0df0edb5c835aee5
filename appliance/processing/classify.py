"""Classification: top-k labels from a 1xC (or C) score output."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from appliance.errors import ModelRejected
from appliance.models.manifest import Manifest
from appliance.processing.inference import Inference, Transform
from appliance.processing.quant import dequantize
from appliance.tensorspec import TensorSpec

PROBABILITY_TOLERANCE = 1e-3


class Classifier:
    def __init__(self, manifest: Manifest, outputs: Sequence[TensorSpec]) -> None:
        if len(outputs) != 1:
            raise ModelRejected(f"a classifier has one output, this model has {len(outputs)}")
        spec = outputs[0]
        classes = int(np.prod(spec.shape))
        if classes < 2 or spec.shape[-1] != classes:
            raise ModelRejected(f"classifier output must be 1xC with C >= 2, got {list(spec.shape)}")
        if manifest.labels and len(manifest.labels) != classes:
            raise ModelRejected(f"model has {classes} classes but {len(manifest.labels)} labels were given")
        self._manifest = manifest
        self._spec = spec

    def __call__(self, outputs: Sequence[np.ndarray], transform: Transform) -> Inference:
        scores = dequantize(outputs[0], self._spec).reshape(-1)
        if scores.min() < -PROBABILITY_TOLERANCE or abs(float(scores.sum()) - 1.0) > 0.05:
            shifted = np.exp(scores - scores.max())  # logits -> probabilities
            scores = shifted / shifted.sum()
        k = min(self._manifest.thresholds.top_k, scores.size)
        top = np.argsort(-scores)[:k]
        best = int(top[0])
        ranked = [
            {
                "label": self._manifest.label_of(int(i)),
                "label_id": int(i),
                "score": round(float(scores[i]), 5),
            }
            for i in top
        ]
        return Inference(self._manifest.label_of(best), best, float(scores[best]), 1, extra={"top_k": ranked})
