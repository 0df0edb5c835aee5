"""The active model at run time: its contexts, pre- and post-processing, and atomic switching.

`ModelManager.acquire()` hands out the current `ModelRuntime` with a reference count; a switch builds
the new runtime completely first, then swaps one reference. Frames already holding the old runtime
finish on it; it is closed when the last of them releases it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.backends.base import BackendOptions, Context
from appliance.backends.failover import context_status
from appliance.backends.registry import Selection, open_with_fallback
from appliance.errors import ApplianceError, BadRequest, ModelRejected
from appliance.models.manifest import Manifest
from appliance.models.registry import Registry, check_activatable
from appliance.processing.image import Preprocessor
from appliance.processing.inference import Inference, Transform
from appliance.processing.tasks import Postprocessor, make_postprocessor
from appliance.processing.tensor import TensorPreprocessor

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0


@dataclass(frozen=True)
class RuntimeOptions:
    order: tuple[str, ...] = ("litert",)
    threads: int = 2
    workers: int = 1
    ring: int = 8  # preprocess buffers: more than can be in flight


class ModelRuntime:
    def __init__(self, manifest: Manifest, files: dict[str, Path], options: RuntimeOptions) -> None:
        self.manifest = manifest
        backend_options = BackendOptions(threads=options.threads, contexts=options.workers)
        self.selection: Selection = open_with_fallback(options.order, files, backend_options)
        first = self.selection.contexts[0]
        self.inputs, self.outputs = first.inputs, first.outputs
        try:
            self.post: Postprocessor = make_postprocessor(manifest, self.inputs, self.outputs)
            self.image_pre = self._image_pre(options.ring)
            self.tensor_pre = TensorPreprocessor(self.inputs[0]) if self.inputs else None
        except ApplianceError:
            self.close()
            raise
        self._refs = 0
        self._retired = False
        self._lock = threading.Lock()

    def _image_pre(self, ring: int) -> Preprocessor | None:
        spec = self.inputs[0] if self.inputs else None
        if (
            spec is None
            or len(spec.shape) != 4
            or spec.shape[-1 if self.manifest.input.layout == "nhwc" else 1] not in (1, 3)
        ):
            if self.manifest.task in ("detect", "segment"):
                raise ModelRejected(f"task {self.manifest.task} needs an image input (1xHxWxC)")
            return None
        return Preprocessor(spec, self.manifest.input, ring)

    @property
    def backend(self) -> str:
        return self.selection.backend

    @property
    def contexts(self) -> tuple[Context, ...]:
        return self.selection.contexts

    def preprocess(self, image: np.ndarray | None, tensor: np.ndarray | None) -> tuple[np.ndarray, Transform]:
        if image is not None:
            if self.image_pre is None:
                raise BadRequest(f"model {self.manifest.ref} takes a tensor, not an image")
            return self.image_pre(image)
        if tensor is None or self.tensor_pre is None:
            raise BadRequest("frame has neither an image nor a tensor")
        return self.tensor_pre(tensor)

    def run(self, worker: int, tensor: np.ndarray) -> tuple[list[np.ndarray], str]:
        """Run on the context owned by `worker`; returns the outputs and the label of the context."""
        context = self.contexts[worker % len(self.contexts)]
        return context.run([tensor]), context.label

    def postprocess(self, outputs: Sequence[np.ndarray], transform: Transform) -> Inference:
        return self.post(outputs, transform)

    def acquire(self) -> ModelRuntime:
        with self._lock:
            self._refs += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            done = self._retired and self._refs == 0
        if done:
            self.close()

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            done = self._refs == 0
        if done:
            self.close()

    def close(self) -> None:
        for context in self.selection.contexts:
            context.close()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.manifest.name,
            "version": self.manifest.version,
            "task": self.manifest.task,
            "backend": self.backend,
            "contexts": [c.label for c in self.contexts],
            "context_health": context_status(self.contexts),
            "fallbacks": [{"backend": b, "reason": r} for b, r in self.selection.fallbacks],
        }


def validate_model(manifest: Manifest, path: Path) -> Manifest:
    """Load with LiteRT, check the tensors fit the task, run once: the registry's gate for new models."""
    options = RuntimeOptions(order=("litert",), threads=1, workers=1, ring=1)
    runtime = ModelRuntime(manifest, {path.suffix: path}, options)
    try:
        zeros = [np.zeros(spec.shape, np.dtype(spec.dtype)) for spec in runtime.inputs]
        try:
            outputs = runtime.contexts[0].run(zeros)
            runtime.postprocess(outputs, Transform(1, 1, 1.0, 1.0))
        except ApplianceError as err:
            raise ModelRejected(f"model does not run: {err}") from err
        return dataclasses.replace(manifest, inputs=runtime.inputs, outputs=runtime.outputs)
    finally:
        runtime.close()


class ModelManager:
    """Owns the active ModelRuntime; switches it atomically when the registry's active model changes."""

    def __init__(self, registry: Registry, options: RuntimeOptions) -> None:
        self.registry = registry
        self.options = options
        self._current: ModelRuntime | None = None
        self._lock = threading.Lock()
        self._seen_state = -1.0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def current(self) -> ModelRuntime | None:
        return self._current

    def acquire(self) -> ModelRuntime | None:
        with self._lock:
            return self._current.acquire() if self._current is not None else None

    def _install(self, manifest: Manifest) -> ModelRuntime:
        runtime = ModelRuntime(manifest, self.registry.files_of(manifest), self.options)
        with self._lock:
            old, self._current = self._current, runtime
        if old is not None:
            old.retire()
        logger.info("model %s running on %s", manifest.ref, runtime.backend)
        return runtime

    def load_active(self) -> ModelRuntime | None:
        """(Re)load whatever the registry says is active. On failure the current model keeps running."""
        self._seen_state = self.registry.state_version()
        manifest = self.registry.active()
        current = self._current
        if manifest is None or (current is not None and current.manifest.ref == manifest.ref):
            return current
        try:
            runtime = self._install(manifest)
        except ApplianceError as err:
            self.last_error = f"cannot load {manifest.ref}: {err}"
            logger.error("%s; keeping %s", self.last_error, current.manifest.ref if current else "no model")
            return current
        self.last_error = None
        return runtime

    def activate(self, name: str, version: int | None = None) -> Manifest:
        """Load first, then record as active: a model that cannot load never becomes active."""
        manifest = self.registry.get(name, version)
        check_activatable(manifest)
        self._install(manifest)
        self.registry.activate(manifest.name, manifest.version)
        self._seen_state = self.registry.state_version()
        return manifest

    def rollback(self) -> Manifest:
        manifest = self.registry.rollback()
        self.load_active()
        return manifest

    def start_watching(self) -> None:
        self._watcher = threading.Thread(target=self._watch, name="model-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            if self.registry.state_version() != self._seen_state:
                self.load_active()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with self._lock:
            current, self._current = self._current, None
        if current is not None:
            current.retire()
