"""NPU contexts with deadlines, spares and one shared CPU fallback: a hung core cannot stall the line.

`NPUGroup` holds the runners of one opened model (one `NPURunner` per NPU context, each on its own
thread, see runner.py) and one `CPUPool` built from the float twin. The pipeline gets one
`FailoverContext` per worker; its `run`:

1. submits the frame to its own runner and waits at most the deadline (`Deadline`: configured, or a
   few times the median measured latency); past it the runner is marked hung;
2. otherwise (hung, failed or rebuilding) tries one other runner that is usable and idle, with the
   same deadline;
3. otherwise runs the frame on the shared CPU pool.

So a frame waits at most two deadlines plus one CPU inference, whatever the NPU does, and the
pipeline's in-order publication never stalls behind a hung core. Runners rebuild themselves in the
background with backoff; nothing slow happens on a frame's call. `label` is the label of whoever
produced the last result, so results record the backend that ran. `problems()` says, in words,
what is wrong right now (for /health).
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.backends.base import Context
from appliance.backends.cpupool import CPUPool
from appliance.backends.runner import NPURunner, RetryPolicy
from appliance.errors import ApplianceError, InferenceFailed
from appliance.tensorspec import TensorSpec

logger = logging.getLogger(__name__)

__all__ = ["Deadline", "FailoverContext", "NPUGroup", "RetryPolicy", "conform", "context_status"]

START_WAIT_S = 60.0  # open() waits this long for every context's first build


@dataclass(frozen=True)
class Deadline:
    """`fixed_s` > 0: that; else `factor` x the median measured latency, at least `min_s`."""

    fixed_s: float = 0.0
    factor: float = 5.0
    min_s: float = 0.5
    startup_s: float = 5.0  # before any latency is measured (the first inferences warm up)

    def of(self, latencies: Sequence[float]) -> float:
        if self.fixed_s > 0:
            return self.fixed_s
        if len(latencies) < 3:
            return max(self.startup_s, self.min_s)
        return max(self.factor * statistics.median(latencies), self.min_s)


def conform(outputs: list[np.ndarray], produced: Sequence[TensorSpec], wanted: Sequence[TensorSpec]) -> None:
    """Dequantise, in the list, fallback outputs that are quantised where the primary gives floats."""
    for i, (have, want) in enumerate(zip(produced, wanted, strict=False)):
        if have.quantized and not want.quantized and i < len(outputs):
            outputs[i] = (outputs[i].astype(np.float32) - have.zero_point) * np.float32(have.scale)


class NPUGroup:
    def __init__(
        self,
        runners: list[NPURunner],
        cpu: CPUPool | None,
        specs: tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]],
        deadline: Deadline,
    ) -> None:
        self.runners = runners
        self.cpu = cpu
        self.inputs, self.outputs = specs
        self.deadline = deadline
        self._open = len(runners)
        self._lock = threading.Lock()
        self.on_close: Callable[[NPUGroup], None] | None = None
        self.cpu_inputs: Callable[[Sequence[np.ndarray]], list[np.ndarray]] = list
        for runner in runners:
            runner.wait_started(START_WAIT_S)

    def deadline_s(self) -> float:
        samples = [s for r in self.runners for s in r.latencies()]
        return self.deadline.of(samples)

    def call(self, runner: NPURunner, inputs: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """The runner's outputs, or None when it is unusable, failed, or missed the deadline."""
        future = runner.submit(inputs)
        if future is None:
            return None
        limit = self.deadline_s()
        try:
            return future.result(timeout=limit)
        except FutureTimeout:
            runner.mark_hung(limit)
        except ApplianceError:
            pass  # the runner logged it and rebuilds itself
        return None

    def spare(self, exclude: NPURunner) -> NPURunner | None:
        idle = [r for r in self.runners if r is not exclude and r.usable() and r.pending == 0]
        return idle[0] if idle else None

    def run_cpu(self, inputs: Sequence[np.ndarray], why: str) -> tuple[list[np.ndarray], str]:
        if self.cpu is None:
            raise InferenceFailed(f"{why} and there is no CPU fallback")
        outputs, context = self.cpu.run(self.cpu_inputs(inputs))
        conform(outputs, context.outputs, self.outputs)
        return outputs, context.label

    def problems(self) -> list[str]:
        """What is wrong right now, in words (empty when every context runs on the NPU)."""
        found = []
        for runner in self.runners:
            st = runner.status()
            if st.state == "hung":
                found.append(
                    f"npu context {st.label} hung since {st.since_s:.1f} s "
                    f"(deadline {self.deadline_s():.2f} s); "
                    "its frames run on other contexts or the CPU"
                )
            elif st.state == "failed":
                retry = f", rebuilt in {st.retry_in_s:.1f} s" if st.retry_in_s is not None else ""
                found.append(f"npu context {st.label} failed ({st.last_error}){retry}; running on the CPU")
            elif st.state == "starting":
                found.append(f"npu context {st.label} is starting since {st.since_s:.1f} s")
        return found

    def release(self) -> None:
        with self._lock:
            self._open -= 1
            last = self._open == 0
        if last:
            for runner in self.runners:
                runner.close()
            if self.cpu is not None:
                self.cpu.close()
            if self.on_close is not None:
                self.on_close(self)


@dataclass(frozen=True)
class ContextStatus:
    """What /api/v1/status shows for one context."""

    label: str
    healthy: bool
    state: str
    running_on: str
    failures: int
    hangs: int
    last_error: str | None
    retry_in_s: float | None
    deadline_s: float
    primary_runs: int
    fallback_runs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "healthy": self.healthy,
            "state": self.state,
            "running_on": self.running_on,
            "failures": self.failures,
            "hangs": self.hangs,
            "last_error": self.last_error,
            "retry_in_s": None if self.retry_in_s is None else round(self.retry_in_s, 1),
            "deadline_s": round(self.deadline_s, 3),
            "primary_runs": self.primary_runs,
            "fallback_runs": self.fallback_runs,
        }


class FailoverContext:
    """The context one pipeline worker owns: its runner first, then a spare runner, then the CPU."""

    def __init__(self, group: NPUGroup, index: int) -> None:
        self._group = group
        self._runner = group.runners[index]
        self._label = self._runner.label
        self._runs = [0, 0]
        self._closed = False

    @property
    def label(self) -> str:
        return self._label

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._group.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._group.outputs

    @property
    def healthy(self) -> bool:
        return self._runner.usable()

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        group = self._group
        outputs = group.call(self._runner, inputs)
        if outputs is not None:
            self._label = self._runner.label
            self._runs[0] += 1
            return outputs
        spare = group.spare(self._runner)
        if spare is not None:
            outputs = group.call(spare, inputs)
            if outputs is not None:
                self._label = spare.label
                self._runs[1] += 1
                return outputs
        why = f"{self._runner.label} is {self._runner.status().state}"
        outputs, label = group.run_cpu(inputs, why)
        self._label = f"{label}:fallback({self._runner.label})"
        self._runs[1] += 1
        return outputs

    def status(self) -> ContextStatus:
        st = self._runner.status()
        return ContextStatus(
            label=st.label,
            healthy=st.state == "ok",
            state=st.state,
            running_on=self._label,
            failures=st.failures,
            hangs=st.hangs,
            last_error=st.last_error,
            retry_in_s=st.retry_in_s if st.state == "failed" else None,
            deadline_s=self._group.deadline_s(),
            primary_runs=self._runs[0],
            fallback_runs=self._runs[1],
        )

    def problems(self) -> list[str]:
        return self._group.problems()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._group.release()


def context_status(contexts: Sequence[Context]) -> list[dict[str, Any]]:
    """Health of every context of a runtime, for /api/v1/status (plain contexts are always healthy)."""
    rows: list[dict[str, Any]] = []
    for context in contexts:
        if isinstance(context, FailoverContext):
            rows.append(context.status().to_json())
        else:
            rows.append({"label": context.label, "healthy": True, "state": "ok", "running_on": context.label})
    return rows
