"""Failure handling: a failing NPU context hands the same frame to the CPU twin, then comes back."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from appliance.backends.base import BackendOptions, Context
from appliance.backends.failover import FailoverContext, RetryPolicy, context_status
from appliance.backends.litert import LiteRTBackend
from appliance.backends.rknn import NPUSettings, RKNNBackend
from appliance.platform import ProbeSources
from tests.conftest import CACHE
from tests.fakes import fixtures
from tests.fakes.models import write_pair

fake_npu = fixtures.fake_npu
rk3588 = fixtures.rk3588

STRIPES = CACHE / "models" / "stripes.tflite"
STRIPES_UINT8 = CACHE / "models" / "stripes_uint8.tflite"
RETRY = RetryPolicy(first_s=5.0, max_s=20.0)


class Clock:
    """A frozen clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_npu(
    folder: Path, sources: ProbeSources, clock: Clock, contexts: int = 1, twin: Path = STRIPES
) -> list[Context]:
    pair = write_pair(folder, twin)
    settings = NPUSettings(core_policy="per-core", retry=RETRY, platform=sources, clock=clock)
    return RKNNBackend(settings).open(pair, BackendOptions(threads=1, contexts=contexts))


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 64, 64, 3), dtype=np.float32)


def expected(seed: int) -> np.ndarray:
    context = LiteRTBackend().open(STRIPES, BackendOptions(threads=1, contexts=1))[0]
    try:
        return context.run([frame(seed)])[0]
    finally:
        context.close()


def test_failure_mid_run_moves_the_same_frame_to_the_cpu(
    tmp_path: Path,
    fake_npu: ModuleType,
    rk3588: ProbeSources,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (context,) = open_npu(tmp_path / "m", rk3588, clock)
    fake_npu.NPU.none_after = 2
    labels = []
    for seed in range(4):
        outputs = context.run([frame(seed)])
        np.testing.assert_allclose(outputs[0], expected(seed), rtol=1e-5, atol=1e-6)
        labels.append(context.label)
    assert labels == ["rknn:core0", "rknn:core0", *["litert:fallback(rknn:core0)"] * 2]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one line: what failed, what runs now, how to fix it
    line = warnings[0].getMessage()
    assert "rknn:core0 failed" in line and "returned None" in line and "appliance doctor" in line
    status = context_status([context])[0]
    assert status["healthy"] is False and status["failures"] == 1
    assert status["retry_in_s"] == 5.0 and status["running_on"] == "litert:fallback(rknn:core0)"
    context.close()


def test_retry_with_backoff_brings_the_npu_back(
    tmp_path: Path,
    fake_npu: ModuleType,
    rk3588: ProbeSources,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    (context,) = open_npu(tmp_path / "m", rk3588, clock)
    fake_npu.NPU.raise_after = 0
    context.run([frame(0)])
    fake_npu.NPU.fail_init = True  # the driver is still gone: retries fail
    waits = []
    for _ in range(4):
        waits.append(context_status([context])[0]["retry_in_s"])
        clock.now += waits[-1]
        context.run([frame(0)])
        assert context.label == "litert:fallback(rknn:core0)"
    assert waits == [5.0, 10.0, 20.0, 20.0]  # doubling, capped at max_s
    fake_npu.NPU.heal()
    clock.now += 19.0
    context.run([frame(0)])
    assert context.label == "litert:fallback(rknn:core0)"  # not yet time to retry
    clock.now += 1.0
    outputs = context.run([frame(1)])
    assert context.label == "rknn:core0"
    np.testing.assert_allclose(outputs[0], expected(1), rtol=1e-5, atol=1e-6)
    status = context_status([context])[0]
    assert status["healthy"] is True and status["failures"] == 5 and status["retry_in_s"] is None
    assert any("rknn:core0 is back" in r.getMessage() for r in caplog.records)
    context.close()


def test_contexts_that_cannot_start_run_on_the_cpu(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources, clock: Clock
) -> None:
    fake_npu.NPU.fail_init = True
    contexts = open_npu(tmp_path / "m", rk3588, clock, contexts=3)
    for context in contexts:
        context.run([frame(2)])
    assert [c.label for c in contexts] == [f"litert:fallback(rknn:core{i})" for i in range(3)]
    assert all("init_runtime" in (row["last_error"] or "") for row in context_status(contexts))
    fake_npu.NPU.heal()
    clock.now += RETRY.first_s
    for context in contexts:
        context.run([frame(2)])
    assert [c.label for c in contexts] == ["rknn:core0", "rknn:core1", "rknn:core2"]
    for context in contexts:
        context.close()


def test_one_failing_core_leaves_the_others_on_the_npu(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources, clock: Clock
) -> None:
    contexts = open_npu(tmp_path / "m", rk3588, clock, contexts=3)
    fake_npu.NPU.failing_cores = {1}
    for context in contexts:
        context.run([frame(3)])
    assert [c.label for c in contexts] == ["rknn:core0", "litert:fallback(rknn:core1)", "rknn:core2"]
    assert [row["healthy"] for row in context_status(contexts)] == [True, False, True]
    for context in contexts:
        context.close()


def test_quantised_fallback_outputs_match_the_npu(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources, clock: Clock
) -> None:
    (context,) = open_npu(tmp_path / "q", rk3588, clock, twin=STRIPES_UINT8)
    tensor = np.random.default_rng(4).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    on_npu = context.run([tensor])[0]
    fake_npu.NPU.none_after = 0
    on_cpu = context.run([tensor])[0]
    assert context.label.startswith("litert:fallback")
    assert on_cpu.dtype == np.float32  # dequantised like RKNNLite's outputs
    np.testing.assert_allclose(on_cpu, on_npu, atol=1e-6)
    context.close()


def test_without_a_fallback_the_frame_fails_but_retries_continue(clock: Clock) -> None:
    from appliance.backends.failover import FailoverPlan
    from appliance.errors import BackendUnavailable, InferenceFailed

    def broken() -> Context:
        raise BackendUnavailable("driver missing")

    context = FailoverContext(FailoverPlan("rknn:core0", broken, None, (), ()), RETRY, clock)
    with pytest.raises(InferenceFailed, match="driver missing"):
        context.run([frame(0)])
    assert context.status().healthy is False
