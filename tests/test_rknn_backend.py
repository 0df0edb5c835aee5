"""Contract tests of the rknn backend against the fake rknnlite (real LiteRT runs the twin inside)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from appliance.backends.base import BackendOptions
from appliance.backends.failover import FailoverContext
from appliance.backends.litert import LiteRTBackend
from appliance.backends.registry import Backends, planned_workers
from appliance.backends.rknn import (
    NPUModel,
    NPUSettings,
    RKNNBackend,
    RKNNContext,
    Slot,
    open_runtime,
    plan_slots,
)
from appliance.config import BackendConfig
from appliance.errors import BackendUnavailable, InferenceFailed, ModelRejected
from appliance.platform import ProbeSources, probe_platform
from tests.conftest import CACHE
from tests.fakes import fixtures
from tests.fakes.boards import RK3566, RK3588, X86_HOST, make_board
from tests.fakes.models import write_pair

fake_npu = fixtures.fake_npu
rk3588 = fixtures.rk3588
npu_backends = fixtures.npu_backends

STRIPES = CACHE / "models" / "stripes.tflite"
STRIPES_UINT8 = CACHE / "models" / "stripes_uint8.tflite"


@pytest.fixture
def pair(tmp_path: Path, fake_npu: ModuleType) -> Path:
    return write_pair(tmp_path / "v1", STRIPES)


def image_input(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 64, 64, 3), dtype=np.float32)


def cpu_outputs(model: Path, tensor: np.ndarray) -> list[np.ndarray]:
    context = LiteRTBackend().open(model, BackendOptions(threads=1, contexts=1))[0]
    try:
        return context.run([tensor])
    finally:
        context.close()


def backend(sources: ProbeSources, policy: str = "per-core") -> RKNNBackend:
    return RKNNBackend(NPUSettings(core_policy=policy, platform=sources))


def test_package_imports_without_the_vendor_module() -> None:
    code = "import sys, appliance.backends.registry; assert 'rknnlite' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(importlib.util.find_spec("rknnlite") is not None, reason="the real rknnlite is installed")
def test_probe_explains_what_is_missing(tmp_path: Path, rk3588: ProbeSources) -> None:
    reason = backend(rk3588).probe()  # the fake is not on sys.path in this test
    assert reason is not None and "pip install rknn-toolkit-lite2" in reason


def test_probe_on_boards(tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources) -> None:
    assert backend(rk3588).probe() is None
    host = backend(make_board(tmp_path / "host", X86_HOST)).probe()
    assert host is not None and "aarch64" in host


def test_per_core_contexts_run_on_their_cores(pair: Path, fake_npu: ModuleType, rk3588: ProbeSources) -> None:
    contexts = backend(rk3588).open(pair, BackendOptions(threads=1, contexts=3))
    assert [c.label for c in contexts] == ["rknn:core0", "rknn:core1", "rknn:core2"]
    tensor = image_input()
    expected = cpu_outputs(pair.with_suffix(".tflite"), tensor)
    for context in contexts:
        outputs = context.run([tensor])
        np.testing.assert_allclose(outputs[0], expected[0], rtol=1e-5, atol=1e-6)
        assert context.label.startswith("rknn:core")
    assert dict(fake_npu.NPU.by_core) == {"mask1": 1, "mask2": 1, "mask4": 1}
    assert contexts[0].inputs[0].shape == (1, 64, 64, 3) and contexts[0].outputs[0].dtype == "float32"
    for context in contexts:
        context.close()
    assert fake_npu.NPU.released == 3


def test_inputs_reach_the_runtime_without_copies(
    pair: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    context = backend(rk3588, "core0").open(pair, BackendOptions(threads=1, contexts=1))[0]
    tensor = image_input()
    context.run([tensor])
    assert fake_npu.NPU.last_inputs[0] is tensor
    assert fake_npu.NPU.last_format == "nhwc"
    context.close()


def test_core_policies_plan_slots() -> None:
    assert plan_slots("auto", 3, 2) == [Slot("rknn:auto", 0), Slot("rknn:auto#1", 0)]
    assert plan_slots("core0_1", 3, 1) == [Slot("rknn:core0_1", 3)]
    assert [s.label for s in plan_slots("per-core", 3, 4)] == [
        "rknn:core0",
        "rknn:core1",
        "rknn:core2",
        "rknn:core0#1",
    ]
    assert [s.core_mask for s in plan_slots("per-core", 3, 4)] == [1, 2, 4, 1]
    assert plan_slots("per-core", 1, 1) == [Slot("rknn:core0", 0)]  # single-core SoCs: driver's choice
    with pytest.raises(BackendUnavailable, match="does not have"):
        plan_slots("core2", 2, 1)


def test_core_count_comes_from_the_device_tree(tmp_path: Path, fake_npu: ModuleType) -> None:
    rk3566 = make_board(tmp_path / "zero3", RK3566)
    assert probe_platform(rk3566).npu_cores == 1
    config = BackendConfig(order=("rknn",), core_policy="per-core", workers=1)
    assert planned_workers(config, probe_platform(rk3566)) == 1
    assert planned_workers(config, probe_platform(make_board(tmp_path / "rock5", RK3588))) == 3
    fake_npu.reset(soc="rk3566", cores=1)
    pair = write_pair(tmp_path / "m", STRIPES, target="rk3566")
    contexts = backend(rk3566).open(pair, BackendOptions(threads=1, contexts=1))
    assert [c.label for c in contexts] == ["rknn:core0"]
    assert contexts[0].run([image_input()])[0].shape == contexts[0].outputs[0].shape
    contexts[0].close()


def test_load_only_reads_and_init_finds_the_damage(pair: Path, fake_npu: ModuleType) -> None:
    from rknnlite.api import RKNNLite  # noqa: PLC0415 the fake, on sys.path only under `fake_npu`

    with pytest.raises(ModelRejected, match="cannot be read"):
        open_runtime(
            RKNNLite, NPUModel(pair.parent / "gone.rknn", pair.with_suffix(".tflite"), (), ()), SLOT0
        )
    assert "Invalid RKNN model path" in fake_npu.NPU.log[-1]
    broken = pair.parent / "broken.rknn"
    broken.write_bytes(pair.read_bytes()[:-100])  # truncated: load_rknn still returns 0
    runtime = RKNNLite()
    assert runtime.load_rknn(str(broken)) == 0
    with pytest.raises(BackendUnavailable, match="damaged"):
        open_runtime(RKNNLite, NPUModel(broken, pair.with_suffix(".tflite"), (), ()), SLOT0)
    assert "Invalid RKNN format" in fake_npu.NPU.log[-1] and "RKNN_ERR_MODEL_INVALID" in fake_npu.NPU.log[-1]


SLOT0 = Slot("rknn:core0", 1)


def test_init_failure_says_what_to_do(pair: Path, fake_npu: ModuleType) -> None:
    from rknnlite.api import RKNNLite  # noqa: PLC0415 the fake, on sys.path only under `fake_npu`

    fake_npu.NPU.fail_init = True
    with pytest.raises(
        BackendUnavailable, match=r"init_runtime\(core_mask=NPU_CORE_1\) returned -1"
    ) as caught:
        open_runtime(RKNNLite, NPUModel.of(pair), Slot("rknn:core1", 2))
    assert "RKNPU driver" in str(caught.value) and "librknnrt.so" in str(caught.value)
    assert "need to insmod rknpu dirver" in fake_npu.NPU.log[-1]
    assert fake_npu.NPU.released == 0  # nothing was initialised, nothing leaked


def test_model_format_newer_than_librknnrt(tmp_path: Path, fake_npu: ModuleType) -> None:
    from rknnlite.api import RKNNLite  # noqa: PLC0415 the fake, on sys.path only under `fake_npu`

    fake_npu.reset(runtime_version="1.5.0")  # format-6 models need librknnrt >= 1.6
    model = write_pair(tmp_path / "new", STRIPES, toolkit="2.3.2")
    with pytest.raises(BackendUnavailable, match="Invalid RKNN model version"):
        open_runtime(RKNNLite, NPUModel.of(model), SLOT0)
    assert "Invalid RKNN model version 6" in fake_npu.NPU.log[-1]
    fake_npu.reset(runtime_version="2.3.2")
    open_runtime(RKNNLite, NPUModel.of(model), SLOT0).close()  # the toolkit's release is not the rule


def test_none_becomes_inference_failed_and_nothing_raises(pair: Path, fake_npu: ModuleType) -> None:
    from rknnlite.api import RKNNLite  # noqa: PLC0415 the fake, on sys.path only under `fake_npu`

    context = open_runtime(RKNNLite, NPUModel.of(pair), SLOT0)
    assert isinstance(context, RKNNContext)
    fake_npu.NPU.none_after = 0
    with pytest.raises(InferenceFailed, match="returned None"):
        context.run([image_input()])
    assert "failed to submit!" in fake_npu.NPU.log[-1]
    fake_npu.NPU.none_after = None
    with pytest.raises(InferenceFailed, match="returned None"):
        context.run([np.zeros((1, 3, 3, 3), np.float32)])  # wrong size: vendor logs, returns None
    assert "Size of inputs[0] is invalid" in fake_npu.NPU.log[-1]
    context.close()


def test_a_shared_context_fails_to_submit(pair: Path, fake_npu: ModuleType) -> None:
    from rknnlite.api import RKNNLite  # noqa: PLC0415 the fake, on sys.path only under `fake_npu`

    runtime = RKNNLite(verbose=False)
    assert runtime.get_sdk_version() is None  # before init_runtime: None, not ""
    assert runtime.load_rknn(str(pair)) == 0 and runtime.init_runtime(core_mask=RKNNLite.NPU_CORE_0) == 0
    fake_npu.NPU.delay_s = 0.3
    results: list[object] = []

    def use() -> None:
        results.append(runtime.inference(inputs=[image_input()], data_format="nhwc"))

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is None for r in results) == 1 and fake_npu.NPU.shared_use == 1
    assert "API: 2.3.2" in (runtime.get_sdk_version() or "")
    fake_npu.NPU.sdk_broken = True
    assert runtime.get_sdk_version() is None
    runtime.release()


def test_twin_is_required(tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources) -> None:
    pair = write_pair(tmp_path / "v", STRIPES)
    pair.with_suffix(".tflite").unlink()
    with pytest.raises(ModelRejected, match="no float twin"):
        backend(rk3588).open(pair, BackendOptions())


def test_quantised_twin_gives_float_outputs(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    pair = write_pair(tmp_path / "q", STRIPES_UINT8)
    context = backend(rk3588, "auto").open(pair, BackendOptions(threads=1, contexts=1))[0]
    assert context.inputs[0].dtype == "uint8" and context.outputs[0].dtype == "float32"
    tensor = np.random.default_rng(1).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    outputs = context.run([tensor])
    assert outputs[0].dtype == np.float32 and abs(float(outputs[0].sum()) - 1.0) < 0.05
    context.close()


def test_selection_prefers_the_npu_and_falls_back(pair: Path, npu_backends: Backends) -> None:
    files = {".tflite": pair.with_suffix(".tflite"), ".rknn": pair}
    chosen = npu_backends.open(("rknn", "litert"), files, BackendOptions(threads=1, contexts=3))
    assert chosen.backend == "rknn" and all(isinstance(c, FailoverContext) for c in chosen.contexts)
    for context in chosen.contexts:
        context.close()
    cpu = npu_backends.open(("rknn", "litert"), {".tflite": files[".tflite"]}, BackendOptions(1, 1))
    assert cpu.backend == "litert" and cpu.fallbacks == (("rknn", "model has no .rknn file"),)
    cpu.contexts[0].close()
