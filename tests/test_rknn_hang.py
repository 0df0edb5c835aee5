"""A hung NPU core cannot stall the line: the real pipeline, three per-core contexts, core 2 hangs on
its third call. Results keep being published (in order) while it hangs, the backend says so, and
the core comes back once the fake device recovers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from appliance.backends.failover import context_status
from appliance.backends.registry import Backends
from appliance.backends.rknn import RKNNBackend
from appliance.config import BackendConfig
from appliance.models.registry import Registry
from appliance.platform import ProbeSources
from appliance.sources.base import Frame
from tests.conftest import wait_for
from tests.fakes import fixtures
from tests.test_rknn_pipeline import Running, rknn_version, samples

fake_npu = fixtures.fake_npu
rk3588 = fixtures.rk3588

DEADLINE_S = 0.4


@pytest.fixture
def hanging(
    registry: Registry, tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> Iterator[Running]:
    config = BackendConfig(
        order=("rknn", "litert"), core_policy="per-core", retry_s=0.05, retry_max_s=0.2, deadline_s=DEADLINE_S
    )
    backends = Backends.from_config(config, rk3588)
    fake_npu.NPU.hang_cores, fake_npu.NPU.hang_after = {2}, 2  # core 2 hangs on its third call
    app = Running(registry, rknn_version(registry, tmp_path), 3, backends)
    yield app
    fake_npu.NPU.recover()
    app.stop()


def submit_all(app: Running, count: int, first: int) -> list[tuple[float, str]]:
    """Submit `count` frames at once; (seconds from submit to result, backend) for each, in order."""
    start = time.monotonic()
    futures = [
        app.pipeline.submit(Frame(first + i, time.time(), "line1", image=image), False, 60.0)
        for i, (_, image) in enumerate(samples(count))
    ]
    out = []
    for future in futures:
        result = future.result(timeout=120)
        out.append((time.monotonic() - start, result.backend))
    return out


def test_one_hung_core_does_not_stall_publication(hanging: Running, fake_npu: ModuleType) -> None:
    backend = hanging.manager.backends.get("rknn")
    assert isinstance(backend, RKNNBackend)
    results = submit_all(hanging, 60, 1)
    assert len(hanging.published) == 60
    assert [r.seq for r in hanging.published] == sorted(r.seq for r in hanging.published)  # still in order
    on_npu = [b for _, b in results if b.startswith("rknn:")]
    assert len(on_npu) >= 40  # >= 2/3 of the results came from the NPU cores that work
    assert fake_npu.NPU.hanging >= 1  # the fake really is blocked in a call
    problems = backend.problems()
    assert any(p.startswith("npu context rknn:core2 hung since") for p in problems), problems
    rows = {row["label"]: row for row in context_status(hanging.manager.current().contexts)}  # type: ignore[union-attr]
    assert rows["rknn:core2"]["state"] == "hung" and rows["rknn:core2"]["hangs"] >= 1
    assert rows["rknn:core0"]["healthy"] and rows["rknn:core1"]["healthy"]
    assert fake_npu.NPU.shared_use == 0  # no context was ever used from two threads

    fake_npu.NPU.recover()  # the driver times the job out: the blocked call returns None
    wait_for(lambda: backend.problems() == [])
    rows = {row["label"]: row for row in context_status(hanging.manager.current().contexts)}  # type: ignore[union-attr]
    assert rows["rknn:core2"]["healthy"]
    after = submit_all(hanging, 30, 61)
    assert any(b == "rknn:core2" for _, b in after)  # the rebuilt context runs frames again
