"""Raw tensor inference on any registry model (KServe v2): no pre/post-processing, tensors in and out.

Each model version gets its own LiteRT context (a few are kept, least recently used dropped), guarded by
a lock so one thread at a time uses it. The pipeline's contexts are never touched from here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from appliance.backends.base import BackendOptions, Context
from appliance.backends.registry import Backends
from appliance.errors import BadRequest, ModelRejected
from appliance.models.manifest import Manifest
from appliance.models.registry import Registry
from appliance.processing.quant import quantize_into
from appliance.tensorspec import TensorSpec

KEEP_MODELS = 4


@dataclass
class _Loaded:
    context: Context
    lock: threading.Lock


class DirectRunner:
    def __init__(self, registry: Registry, threads: int, backends: Backends | None = None) -> None:
        self.registry = registry
        self.threads = threads
        self.backends = backends or Backends.default()
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._lock = threading.Lock()

    def _context(self, manifest: Manifest) -> _Loaded:
        with self._lock:
            found = self._loaded.get(manifest.ref)
            if found is not None:
                self._loaded.move_to_end(manifest.ref)
                return found
        path = self.registry.files_of(manifest).get(".tflite")
        if path is None:
            raise ModelRejected(f"model {manifest.ref} has no .tflite file to run on the CPU")
        context = self.backends.get("litert").open(path, BackendOptions(threads=self.threads, contexts=1))[0]
        loaded = _Loaded(context, threading.Lock())
        with self._lock:
            self._loaded[manifest.ref] = loaded
            while len(self._loaded) > KEEP_MODELS:
                self._loaded.popitem(last=False)
        return loaded

    def run(self, manifest: Manifest, inputs: dict[str, np.ndarray]) -> list[tuple[TensorSpec, np.ndarray]]:
        """Inputs by tensor name (or by position when the names are input0, input1...); outputs in order."""
        loaded = self._context(manifest)
        arrays = [fit(spec, _pick(inputs, spec, i)) for i, spec in enumerate(loaded.context.inputs)]
        with loaded.lock:
            outputs = loaded.context.run(arrays)
        return list(zip(loaded.context.outputs, outputs, strict=True))


def _pick(inputs: dict[str, np.ndarray], spec: TensorSpec, index: int) -> np.ndarray:
    if spec.name in inputs:
        return inputs[spec.name]
    if len(inputs) == 1 and index == 0:
        return next(iter(inputs.values()))
    raise BadRequest(f"input {spec.name!r} is missing; send it by that name")


def fit(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """The array in the model's shape and dtype: same element count; floats are quantised if needed."""
    if array.size != int(np.prod(spec.shape)):
        raise BadRequest(f"input {spec.name!r}: shape {list(array.shape)} does not fit {list(spec.shape)}")
    array = array.reshape(spec.shape)
    target = np.dtype(spec.dtype)
    if array.dtype == target:
        return array
    if spec.quantized and np.issubdtype(array.dtype, np.floating):
        return quantize_into(array.astype(np.float32), spec, np.empty(spec.shape, target))
    raise BadRequest(f"input {spec.name!r}: datatype {array.dtype.name} given, the model takes {spec.dtype}")
