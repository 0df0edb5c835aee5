"""The real pipeline on the fake NPU: one context per core, one worker per context, results in order,
and a device that dies mid-run without a single frame lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from appliance.backends.failover import context_status
from appliance.backends.registry import Backends, planned_workers
from appliance.config import BackendConfig
from appliance.convert.conversion import store_version
from appliance.models.manifest import Manifest
from appliance.models.registry import Registry
from appliance.pipeline.pipeline import Pipeline, PipelineOptions
from appliance.pipeline.results import Result, ResultBus
from appliance.pipeline.runtime import ModelManager, RuntimeOptions
from appliance.platform import ProbeSources, probe_platform
from appliance.sources.base import Frame
from appliance_tools.demo import stripes
from tests.fakes import fixtures

fake_npu = fixtures.fake_npu
rk3588 = fixtures.rk3588
npu_backends = fixtures.npu_backends

FRAMES = 60
QUEUE = 8


def rknn_version(registry: Registry, tmp_path: Path) -> Manifest:
    """stripes + its fake .rknn as a new registry version, stored the way `models convert` does."""
    from rknnlite.container import pack  # noqa: PLC0415 the fake, on sys.path only under `fake_npu`

    base = registry.get("stripes")
    twin = registry.files_of(base)[".tflite"]
    rknn = tmp_path / "model.rknn"
    rknn.write_bytes(pack(twin.read_bytes()))
    return store_version(registry, base, twin, rknn, {"passed": True, "target": "rk3588", "dtype": "fp16"})


def samples(count: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    out = []
    for i in range(count):
        label = stripes.LABELS[i % len(stripes.LABELS)]
        out.append((label, cv2.cvtColor(stripes.make_sample(label, rng), cv2.COLOR_RGB2BGR)))
    return out


class Running:
    def __init__(self, registry: Registry, manifest: Manifest, workers: int, backends: Backends) -> None:
        ring = 2 * QUEUE + workers + 2  # as services.runtime_options sizes it
        options = RuntimeOptions(order=("rknn", "litert"), threads=1, workers=workers, ring=ring)
        self.manager = ModelManager(registry, options, backends=backends)
        self.manager.activate(manifest.name, manifest.version)
        self.bus = ResultBus()
        self.published: list[Result] = []
        self.bus.subscribe("test", self.published.append)
        self.pipeline = Pipeline(self.manager, self.bus, PipelineOptions(queue_size=QUEUE, workers=workers))
        self.pipeline.start()

    def run(self, images: list[tuple[str, np.ndarray]]) -> list[Result]:
        futures = [
            self.pipeline.submit(Frame(i + 1, time.time(), "line1", image=image), False, 30.0)
            for i, (_, image) in enumerate(images)
        ]
        return [f.result(timeout=30) for f in futures]

    def stop(self) -> None:
        self.pipeline.stop()
        self.manager.close()


@pytest.fixture
def running(
    registry: Registry, tmp_path: Path, npu_backends: Backends, rk3588: ProbeSources
) -> Iterator[Running]:
    config = BackendConfig(order=("rknn", "litert"), core_policy="per-core")
    workers = planned_workers(config, probe_platform(rk3588))
    assert workers == 3
    app = Running(registry, rknn_version(registry, tmp_path), workers, npu_backends)
    yield app
    app.stop()


def test_per_core_pipeline_keeps_order_and_uses_every_core(running: Running, fake_npu: ModuleType) -> None:
    fake_npu.NPU.delay_s = 0.003  # long enough for every worker to get frames
    images = samples(FRAMES)
    results = running.run(images)
    assert [r.seq for r in running.published] == list(range(1, FRAMES + 1))
    assert [r.frame_id for r in results] == list(range(1, FRAMES + 1))
    assert {r.backend for r in results} == {"rknn:core0", "rknn:core1", "rknn:core2"}
    assert sum(r.label == label for r, (label, _) in zip(results, images, strict=True)) >= FRAMES * 0.9
    assert set(fake_npu.NPU.by_core) == {"mask1", "mask2", "mask4"}
    runtime = running.manager.current()
    assert runtime is not None and runtime.backend == "rknn"
    assert [row["label"] for row in context_status(runtime.contexts)] == [
        "rknn:core0",
        "rknn:core1",
        "rknn:core2",
    ]


def test_device_dying_mid_run_loses_no_frame(running: Running, fake_npu: ModuleType) -> None:
    fake_npu.NPU.none_after = fake_npu.NPU.inferences + 20  # after the activation proof's run
    images = samples(FRAMES)
    results = running.run(images)
    assert [r.seq for r in running.published] == list(range(1, FRAMES + 1))
    backends = [r.backend for r in results]
    # the device answers its first 20 inferences (in whatever order the workers reach it), then never
    assert sum(b.startswith("rknn:core") for b in backends) == 20
    assert backends[-1].startswith("litert:fallback(rknn:core")
    expected = [label for label, _ in images]
    assert sum(r.label == e for r, e in zip(results, expected, strict=True)) >= FRAMES * 0.9
    runtime = running.manager.current()
    assert runtime is not None
    # every context failed; each is rebuilt in the background and fails again on its next frame
    assert all(row["failures"] >= 1 for row in context_status(runtime.contexts))
    assert sum(b.startswith("litert:fallback(rknn:core") for b in backends) == FRAMES - 20


def test_workers_never_share_a_context(running: Running, fake_npu: ModuleType) -> None:
    """The fake counts inferences that overlap on one context (the real one fails to submit)."""
    fake_npu.NPU.delay_s = 0.01
    results = running.run(samples(30))
    assert all(r.backend.startswith("rknn:core") for r in results)
    assert fake_npu.NPU.shared_use == 0
