"""The active model at run time: one object for the per-model work of a frame, and atomic switching.

`ModelRuntime` is everything one model needs for a frame, one call per pipeline stage: `prepare`
(decode if compressed, resize, normalise into a pooled tensor), `invoke` (run on the worker's context,
hand the tensor back) and `finish` (decode the outputs for the task); `infer` does the three in the
calling thread (proofs, one-shot runs). `ModelManager.acquire()` hands out the current runtime with a
reference count; a switch builds the new runtime completely first, then swaps one reference. Frames
already holding the old runtime finish on it; it is closed when the last of them releases it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.backends.base import BackendOptions, Context
from appliance.backends.failover import context_status
from appliance.backends.registry import Backends, Selection
from appliance.backends.rknnio import FoldedInput, folded_of
from appliance.errors import ApplianceError, BadRequest, ModelRejected
from appliance.models.manifest import Manifest
from appliance.models.registry import Registry, check_activatable
from appliance.pipeline.proof import FrameTap, prove
from appliance.processing.image import Prepared, Preprocessor, decode
from appliance.processing.inference import Inference, Transform
from appliance.processing.tasks import Postprocessor, make_postprocessor
from appliance.processing.tensor import TensorPreprocessor
from appliance.sources.base import Frame

logger = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0


@dataclass(frozen=True)
class RuntimeOptions:
    order: tuple[str, ...] = ("litert",)
    threads: int = 2
    workers: int = 1
    ring: int = 8  # preprocess buffers: more than can be in flight


class ModelRuntime:
    def __init__(
        self, manifest: Manifest, files: dict[str, Path], options: RuntimeOptions, backends: Backends
    ) -> None:
        self.manifest = manifest
        backend_options = BackendOptions(threads=options.threads, contexts=options.workers)
        self.selection: Selection = backends.open(options.order, files, backend_options)
        first = self.selection.contexts[0]
        self.inputs, self.outputs = first.inputs, first.outputs
        try:
            self.post: Postprocessor = make_postprocessor(manifest, self.inputs, self.outputs)
            self.fold = self._npu_fold()
            self.image_pre = self._image_pre(options.ring)
            self.tensor_pre = TensorPreprocessor(self.inputs[0]) if self.inputs else None
            # a float tensor (the twin's input, as the API describes it) for a folded .rknn
            self.float_pre = (
                TensorPreprocessor(dataclasses.replace(self.inputs[0], dtype="float32"))
                if self.fold is not None
                else None
            )
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
        options = self.manifest.input
        if self.fold is not None:
            options = dataclasses.replace(options, mean=(0.0,), std=(1.0,))
        return Preprocessor(spec, options, ring)

    def _npu_fold(self) -> FoldedInput | None:
        """On the NPU route of a model whose .rknn has mean/std folded in (report.rknn.folded_input)
        the NPU normalises: the pipeline stops at uint8 pixels (the CPU fallback of that route
        normalises for the float twin, in the rknn backend). None on every other route."""
        spec = self.inputs[0] if self.inputs else None
        if self.backend == "rknn" and spec is not None and spec.dtype == "uint8":
            return folded_of(self.manifest.report)
        return None

    @property
    def backend(self) -> str:
        return self.selection.backend

    @property
    def contexts(self) -> tuple[Context, ...]:
        return self.selection.contexts

    def prepare(self, frame: Frame, keep_image: bool = False) -> tuple[Prepared, Frame]:
        """Pre-processing: the model input for `frame`, and the frame with its image when it came
        compressed and the image is kept (decoded at full size; else just large enough for the model)."""
        if frame.encoded is not None and frame.image is None:
            pre = self._need_image_pre()
            if not keep_image:
                return pre.prepare_encoded(frame.encoded), frame
            frame = dataclasses.replace(frame, image=decode(frame.encoded), encoded=None)
        if frame.image is not None:
            return self._need_image_pre().prepare(frame.image), frame
        if frame.tensor is None or self.tensor_pre is None:
            raise BadRequest("frame has neither an image nor a tensor")
        return Prepared(*self._tensor(frame.tensor)), frame

    def _need_image_pre(self) -> Preprocessor:
        if self.image_pre is None:
            raise BadRequest(f"model {self.manifest.ref} takes a tensor, not an image")
        return self.image_pre

    def _tensor(self, tensor: np.ndarray) -> tuple[np.ndarray, Transform]:
        assert self.tensor_pre is not None
        if self.fold is not None and self.float_pre is not None and tensor.dtype.kind == "f":
            values, transform = self.float_pre(tensor)
            return self.fold.pixels(values, self.manifest.input.layout), transform
        return self.tensor_pre(tensor)

    def invoke(self, worker: int, prepared: Prepared) -> tuple[list[np.ndarray], str]:
        """Run on the context owned by `worker`; returns the outputs and the label of the context. The
        input tensor goes back to its pool once the run returned (after a failure it is left alone: a
        hung NPU call may still read it)."""
        context = self.contexts[worker % len(self.contexts)]
        outputs = context.run([prepared.tensor])
        prepared.release()
        return outputs, context.label

    def finish(self, outputs: Sequence[np.ndarray], transform: Transform) -> Inference:
        """Post-processing: the task's reading of the outputs, in source-image coordinates."""
        return self.post(outputs, transform)

    def infer(self, frame: Frame, worker: int = 0) -> tuple[Inference, str]:
        """prepare -> invoke -> finish in the calling thread; returns the inference and the context."""
        prepared, _ = self.prepare(frame)
        outputs, label = self.invoke(worker, prepared)
        return self.finish(outputs, prepared.transform), label

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


def validate_model(manifest: Manifest, path: Path, backends: Backends | None = None) -> Manifest:
    """Load with LiteRT, check the tensors fit the task, run once: the registry's gate for new models."""
    options = RuntimeOptions(order=("litert",), threads=1, workers=1, ring=1)
    runtime = ModelRuntime(manifest, {path.suffix: path}, options, backends or Backends.default())
    try:
        zeros = [np.zeros(spec.shape, np.dtype(spec.dtype)) for spec in runtime.inputs]
        try:
            outputs = runtime.contexts[0].run(zeros)
            runtime.finish(outputs, Transform(1, 1, 1.0, 1.0))
        except ApplianceError as err:
            raise ModelRejected(f"model does not run: {err}") from err
        return dataclasses.replace(manifest, inputs=runtime.inputs, outputs=runtime.outputs)
    finally:
        runtime.close()


class ModelManager:
    """Owns the active ModelRuntime; switches it atomically, and only to a model proven on the source.

    Every way in (API, UI, PLC job change, the registry changed by `appliance models activate`, rollback,
    start) builds the candidate completely and runs it once on the source's latest frame (`FrameTap`)
    before anything changes; a candidate that fails is refused and the running model stays.
    """

    def __init__(
        self,
        registry: Registry,
        options: RuntimeOptions,
        tap: FrameTap | None = None,
        backends: Backends | None = None,
    ) -> None:
        self.registry = registry
        self.options = options
        self.backends = backends or Backends.default()
        self.tap = tap or FrameTap()
        self._current: ModelRuntime | None = None
        self._lock = threading.Lock()
        self._switch = threading.Lock()  # one activation at a time
        self._seen_state = -1.0
        self.last_error: str | None = None
        self.fallback: dict[str, str] | None = None  # set when start fell back from a broken model
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def current(self) -> ModelRuntime | None:
        return self._current

    def acquire(self) -> ModelRuntime | None:
        with self._lock:
            return self._current.acquire() if self._current is not None else None

    def candidate(self, manifest: Manifest) -> ModelRuntime:
        """Load `manifest` (checksum first) and prove it on the source's latest frame; not installed."""
        self.registry.verify(manifest)
        runtime = ModelRuntime(manifest, self.registry.files_of(manifest), self.options, self.backends)
        try:
            prove(runtime, self.tap.sample())
        except ApplianceError:
            runtime.close()
            raise
        return runtime

    def _install(self, runtime: ModelRuntime) -> None:
        with self._lock:
            old, self._current = self._current, runtime
        if old is not None:
            old.retire()
        self.last_error = None
        logger.info("model %s running on %s", runtime.manifest.ref, runtime.backend)

    def _switch_to(self, manifest: Manifest, record: Callable[[], object]) -> Manifest:
        """Prove, record in the registry (`record`), then switch; on any failure nothing changes."""
        check_activatable(manifest)
        runtime = self.candidate(manifest)
        try:
            record()
        except BaseException:
            runtime.close()
            raise
        self._seen_state = self.registry.state_version()
        self._install(runtime)
        return manifest

    def activate(self, name: str, version: int | None = None) -> Manifest:
        """Prove first, then record as active and switch: a model that cannot run never becomes active."""
        with self._switch:
            manifest = self.registry.get(name, version)
            return self._switch_to(manifest, lambda: self.registry.activate(manifest.name, manifest.version))

    def rollback(self) -> Manifest:
        """Back to the previously active model, proven like any activation."""
        with self._switch:
            previous = self.registry.previous()
            return self._switch_to(previous, self.registry.rollback)

    def load_active(self) -> ModelRuntime | None:
        """(Re)load what the registry says is active (another process changed it). A candidate that
        fails is refused loudly: the running model stays, and the registry is pointed back at it."""
        with self._switch:
            self._seen_state = self.registry.state_version()
            manifest = self.registry.active()
            current = self._current
            if manifest is None or (current is not None and current.manifest.ref == manifest.ref):
                return current
            try:
                self._install(self.candidate(manifest))
            except ApplianceError as err:
                self.last_error = f"cannot activate {manifest.ref}: {err}"
                keep = current.manifest if current is not None else None
                logger.error("%s; keeping %s", self.last_error, keep.ref if keep else "no model")
                if keep is not None:
                    self.registry.activate(keep.name, keep.version)
                    self._seen_state = self.registry.state_version()
            return self._current

    def start(self) -> ModelRuntime | None:
        """Load the active model; if it cannot run, fall back to the newest earlier one that can, loudly."""
        with self._switch:
            self._seen_state = self.registry.state_version()
            wanted = self.registry.active()
            if wanted is None:
                return None
            try:
                self._install(self.candidate(wanted))
                return self._current
            except ApplianceError as err:
                reason = str(err)
            logger.error("active model %s cannot run: %s", wanted.ref, reason)
            for manifest in self.registry.history():
                try:
                    runtime = self.candidate(manifest)
                except ApplianceError as err:
                    logger.error("fallback %s cannot run either: %s", manifest.ref, err)
                    continue
                self.registry.activate(manifest.name, manifest.version)
                self._seen_state = self.registry.state_version()
                self._install(runtime)
                self.fallback = {"wanted": wanted.ref, "running": manifest.ref, "reason": reason}
                self.last_error = f"active model {wanted.ref} cannot run ({reason}); running {manifest.ref}"
                logger.error("%s", self.last_error)
                return runtime
            self.last_error = f"active model {wanted.ref} cannot run ({reason}) and no earlier model can"
            logger.error("%s: no model runs", self.last_error)
            return None

    def start_watching(self) -> None:
        self._watcher = threading.Thread(target=self._watch, name="model-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            if self.registry.state_version() != self._seen_state:
                try:
                    self.load_active()
                except ApplianceError as err:
                    logger.error("reading the model registry failed: %s", err)

    def status(self) -> dict[str, Any]:
        return {"last_error": self.last_error, "fallback": self.fallback}

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with self._lock:
            current, self._current = self._current, None
        if current is not None:
            current.retire()
