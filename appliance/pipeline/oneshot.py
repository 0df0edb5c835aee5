"""Run one model on single frames in the calling thread (CLI `infer`, benchmarks): no queues, no store."""

from __future__ import annotations

import time
from types import TracebackType

import numpy as np

from appliance.backends.registry import Backends
from appliance.config import Config
from appliance.models.manifest import Manifest
from appliance.models.registry import Registry, check_activatable
from appliance.pipeline.proof import Sample, input_kind, prove
from appliance.pipeline.results import Origin, Result, Timings
from appliance.pipeline.runtime import ModelRuntime, RuntimeOptions
from appliance.sources.base import Frame


class OneShot:
    def __init__(
        self, registry: Registry, manifest: Manifest, config: Config, backends: Backends | None = None
    ) -> None:
        """`backends`: the running service's (the UI's test); a tool without one builds them from config."""
        options = RuntimeOptions(
            order=config.backend.order, threads=config.backend.threads, workers=1, ring=1
        )
        engines = backends or Backends.from_config(config.backend)
        self.runtime = ModelRuntime(manifest, registry.files_of(manifest), options, engines)
        self._seq = 0

    def __enter__(self) -> OneShot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.runtime.close()

    def run(
        self,
        image: np.ndarray | None,
        source: str = "cli",
        tensor: np.ndarray | None = None,
        encoded: bytes | None = None,
    ) -> Result:
        """One frame: an image, a tensor, or compressed image bytes (decoded just large enough)."""
        self._seq += 1
        rt = self.runtime
        frame = Frame(self._seq, time.time(), source, image=image, tensor=tensor, encoded=encoded)
        t0 = time.perf_counter()
        prepared, frame = rt.prepare(frame)
        t1 = time.perf_counter()
        outputs, backend = rt.invoke(0, prepared)
        t2 = time.perf_counter()
        inference = rt.finish(outputs, prepared.transform)
        t3 = time.perf_counter()
        timings = Timings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t3 - t0) * 1e3)
        return Result.from_inference(
            Origin(self._seq, frame, store=False), rt.manifest, backend, inference, timings
        )


def check_candidate(registry: Registry, manifest: Manifest, config: Config) -> None:
    """Prove `manifest` as the running appliance would before switching to it, without a running one:
    checksum, load on the configured backends, one run on an input fitting the configured source."""
    check_activatable(manifest)
    registry.verify(manifest)
    options = RuntimeOptions(order=config.backend.order, threads=config.backend.threads, workers=1, ring=1)
    runtime = ModelRuntime(
        manifest, registry.files_of(manifest), options, Backends.from_config(config.backend)
    )
    try:
        kind = None if config.source.kind == "none" else config.source.kind
        prove(runtime, Sample(None, input_kind(kind)))
    finally:
        runtime.close()
