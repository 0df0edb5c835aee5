"""Failure handling: a failing NPU context hands the same frame to a spare context or the one shared
CPU pool, is rebuilt in the background with backoff, and comes back."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from appliance.backends.base import BackendOptions, Context
from appliance.backends.cpupool import PoolSize
from appliance.backends.failover import Deadline, FailoverContext, NPUGroup, RetryPolicy, context_status
from appliance.backends.litert import LiteRTBackend
from appliance.backends.rknn import NPUSettings, RKNNBackend
from appliance.backends.runner import NPURunner
from appliance.errors import BackendUnavailable, InferenceFailed
from appliance.platform import ProbeSources
from tests.conftest import CACHE, wait_for
from tests.fakes import fixtures
from tests.fakes.models import write_pair

fake_npu = fixtures.fake_npu
rk3588 = fixtures.rk3588

STRIPES = CACHE / "models" / "stripes.tflite"
STRIPES_UINT8 = CACHE / "models" / "stripes_uint8.tflite"
SLOW_RETRY = RetryPolicy(first_s=60.0, max_s=60.0)  # stays failed for the whole test
FAST_RETRY = RetryPolicy(first_s=0.05, max_s=0.2)
LONG = Deadline(fixed_s=30.0)


def open_npu(
    folder: Path,
    sources: ProbeSources,
    *,
    contexts: int = 1,
    twin: Path = STRIPES,
    retry: RetryPolicy = SLOW_RETRY,
    deadline: Deadline = LONG,
) -> tuple[RKNNBackend, list[Context]]:
    pair = write_pair(folder, twin)
    settings = NPUSettings(core_policy="per-core", retry=retry, platform=sources, deadline=deadline)
    backend = RKNNBackend(settings)
    return backend, backend.open(pair, BackendOptions(threads=1, contexts=contexts))


def close_all(contexts: list[Context]) -> None:
    for context in contexts:
        context.close()


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 64, 64, 3), dtype=np.float32)


def expected(seed: int) -> np.ndarray:
    context = LiteRTBackend().open(STRIPES, BackendOptions(threads=1, contexts=1))[0]
    try:
        return context.run([frame(seed)])[0]
    finally:
        context.close()


def test_failure_mid_run_moves_the_same_frame_to_the_cpu(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources, caplog: pytest.LogCaptureFixture
) -> None:
    backend, (context,) = open_npu(tmp_path / "m", rk3588)
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
    assert status["healthy"] is False and status["state"] == "failed" and status["failures"] == 1
    assert status["running_on"] == "litert:fallback(rknn:core0)" and status["retry_in_s"] > 0
    assert backend.problems() and "npu context rknn:core0 failed" in backend.problems()[0]
    context.close()
    assert backend.problems() == []  # a closed model has no problems left behind


def test_rebuilt_in_the_background_with_backoff(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake_npu.NPU.fail_init = True  # the driver is gone: every build fails
    _, (context,) = open_npu(tmp_path / "m", rk3588, retry=FAST_RETRY)
    context.run([frame(0)])
    assert context.label == "litert:fallback(rknn:core0)"
    wait_for(lambda: context_status([context])[0]["failures"] >= 4)  # retried without any frame
    fake_npu.NPU.heal()
    wait_for(lambda: context_status([context])[0]["healthy"])
    outputs = context.run([frame(1)])
    assert context.label == "rknn:core0"
    np.testing.assert_allclose(outputs[0], expected(1), rtol=1e-5, atol=1e-6)
    assert any("rknn:core0 is back" in r.getMessage() for r in caplog.records)
    context.close()


def test_contexts_that_cannot_start_share_one_cpu_pool(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    fake_npu.NPU.fail_init = True
    _, contexts = open_npu(tmp_path / "m", rk3588, contexts=3)
    barrier = threading.Barrier(3)

    def use(context: Context) -> None:
        barrier.wait()
        for seed in range(3):
            context.run([frame(seed)])

    threads = [threading.Thread(target=use, args=(c,)) for c in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [c.label for c in contexts] == [f"litert:fallback(rknn:core{i})" for i in range(3)]
    assert all("init_runtime" in (row["last_error"] or "") for row in context_status(contexts))
    pool = contexts[0]._group.cpu  # type: ignore[attr-defined]
    assert pool is contexts[2]._group.cpu  # type: ignore[attr-defined]  # one pool, not one per context
    assert pool.opened <= PoolSize.for_machine(3, 1).interpreters and pool.runs == 9
    close_all(contexts)


def test_pool_is_sized_to_the_cores() -> None:
    assert PoolSize.for_machine(contexts=3, threads=2, cores=2) == PoolSize(2, 1)
    assert PoolSize.for_machine(contexts=3, threads=2, cores=8) == PoolSize(3, 2)
    assert PoolSize.for_machine(contexts=1, threads=4, cores=8) == PoolSize(1, 4)


def test_a_failing_core_hands_its_frame_to_an_idle_core(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    _, contexts = open_npu(tmp_path / "m", rk3588, contexts=3)
    fake_npu.NPU.failing_cores = {1}
    for context in contexts:
        np.testing.assert_allclose(context.run([frame(3)])[0], expected(3), rtol=1e-5, atol=1e-6)
    assert contexts[0].label == "rknn:core0" and contexts[2].label == "rknn:core2"
    assert contexts[1].label in ("rknn:core0", "rknn:core2")  # a spare NPU context, not the CPU
    assert [row["healthy"] for row in context_status(contexts)] == [True, False, True]
    close_all(contexts)


def test_quantised_fallback_outputs_match_the_npu(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    _, (context,) = open_npu(tmp_path / "q", rk3588, twin=STRIPES_UINT8)
    tensor = np.random.default_rng(4).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    on_npu = context.run([tensor])[0]
    fake_npu.NPU.none_after = 0
    on_cpu = context.run([tensor])[0]
    assert context.label.startswith("litert:fallback")
    assert on_cpu.dtype == np.float32  # dequantised like the NPU path
    np.testing.assert_allclose(on_cpu, on_npu, atol=1e-6)
    context.close()


def test_a_slow_failure_costs_one_deadline(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    backend, (context,) = open_npu(tmp_path / "m", rk3588, deadline=Deadline(fixed_s=0.3))
    fake_npu.NPU.none_after, fake_npu.NPU.slow_fail_s = 0, 3.0  # a driver timeout: None after 3 s
    outputs = context.run([frame(5)])
    np.testing.assert_allclose(outputs[0], expected(5), rtol=1e-5, atol=1e-6)
    assert context.label == "litert:fallback(rknn:core0)"
    assert context_status([context])[0]["hangs"] == 1
    assert "hung since" in backend.problems()[0]
    wait_for(lambda: context_status([context])[0]["state"] == "failed")  # the late None arrives
    context.close()


def test_without_a_fallback_the_frame_fails() -> None:
    def broken() -> Context:
        raise BackendUnavailable("driver missing")

    runner = NPURunner("rknn:core0", broken, SLOW_RETRY)
    group = NPUGroup([runner], None, ((), ()), LONG)
    context = FailoverContext(group, 0)
    with pytest.raises(InferenceFailed, match="no CPU fallback"):
        context.run([frame(0)])
    assert context.status().healthy is False and "driver missing" in (context.status().last_error or "")
    context.close()
