"""A context that keeps producing results when its primary (NPU) context fails.

`FailoverContext` wraps one primary context (built by a factory, e.g. an RKNN context pinned to one
NPU core) and one CPU fallback built from the model's float twin, so pre- and post-processing stay the
same. When the primary fails (it cannot start, or a run raises InferenceFailed), the wrapper marks it
unhealthy, releases it, runs the same frame on the fallback within the same call, logs one line with
what failed and how to fix it, and rebuilds the primary after a backoff that doubles up to a cap.
`label` is the label of whoever produced the last result, so results record the backend that ran.

One wrapper belongs to one pipeline worker thread, like every context; its lock only makes an
accidental second user wait instead of reaching the vendor runtime concurrently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.backends.base import Context, TensorSpec
from appliance.errors import ApplianceError, InferenceFailed

logger = logging.getLogger(__name__)

Factory = Callable[[], Context]
Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """Wait `first_s` before the first retry, doubling after each failed retry, at most `max_s`."""

    first_s: float = 5.0
    max_s: float = 300.0

    def delay(self, failures: int) -> float:
        return float(min(self.first_s * 2 ** max(failures - 1, 0), max(self.max_s, self.first_s)))


@dataclass(frozen=True)
class FailoverPlan:
    """How to build both sides of a wrapper and what to tell the operator when the primary fails."""

    label: str
    primary: Factory
    fallback: Factory | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    hint: str = ""


@dataclass(frozen=True)
class ContextStatus:
    """What /api/v1/status shows for one context."""

    label: str
    healthy: bool
    running_on: str
    failures: int
    last_error: str | None
    retry_in_s: float | None
    primary_runs: int
    fallback_runs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "healthy": self.healthy,
            "running_on": self.running_on,
            "failures": self.failures,
            "last_error": self.last_error,
            "retry_in_s": None if self.retry_in_s is None else round(self.retry_in_s, 1),
            "primary_runs": self.primary_runs,
            "fallback_runs": self.fallback_runs,
        }


def conform(outputs: list[np.ndarray], produced: Sequence[TensorSpec], wanted: Sequence[TensorSpec]) -> None:
    """Dequantise, in the list, fallback outputs that are quantised where the primary gives floats."""
    for i, (have, want) in enumerate(zip(produced, wanted, strict=False)):
        if have.quantized and not want.quantized and i < len(outputs):
            outputs[i] = (outputs[i].astype(np.float32) - have.zero_point) * np.float32(have.scale)


class FailoverContext:
    def __init__(self, plan: FailoverPlan, policy: RetryPolicy, clock: Clock = time.monotonic) -> None:
        self._plan = plan
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._primary: Context | None = None
        self._fallback: Context | None = None
        self._label = plan.label
        self._failures = 0  # consecutive: 0 means healthy
        self._total_failures = 0
        self._next_retry = 0.0
        self._last_error: str | None = None
        self._runs = [0, 0]
        try:
            self._primary = plan.primary()
        except ApplianceError as err:
            self._fail(f"cannot start: {err}")

    @property
    def label(self) -> str:
        return self._label

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._plan.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._plan.outputs

    @property
    def healthy(self) -> bool:
        return self._failures == 0

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            primary = self._ready_primary()
            if primary is not None:
                try:
                    outputs = primary.run(inputs)
                except ApplianceError as err:
                    self._fail(str(err))
                else:
                    self._recovered()
                    return outputs
            return self._run_fallback(inputs)

    def _ready_primary(self) -> Context | None:
        if self._primary is not None or self._clock() < self._next_retry:
            return self._primary
        try:
            self._primary = self._plan.primary()
        except ApplianceError as err:
            self._fail(f"retry failed: {err}")
        return self._primary

    def _fail(self, reason: str) -> None:
        if self._primary is not None:
            self._primary.close()
            self._primary = None
        self._failures += 1
        self._total_failures += 1
        reason = reason.removeprefix(f"{self._plan.label}: ")
        self._last_error = reason
        delay = self._policy.delay(self._failures)
        self._next_retry = self._clock() + delay
        if self._failures == 1:
            fallback = "the CPU fallback" if self._plan.fallback is not None else "no fallback (frames fail)"
            hint = f" To fix: {self._plan.hint}" if self._plan.hint else ""
            logger.warning(
                "%s failed: %s; running on %s, retrying in %.0f s.%s",
                self._plan.label,
                reason,
                fallback,
                delay,
                hint,
            )
        else:
            logger.debug("%s still failing (%s); next retry in %.0f s", self._plan.label, reason, delay)

    def _recovered(self) -> None:
        if self._failures:
            logger.info("%s is back after %d failed attempt(s)", self._plan.label, self._failures)
            self._failures = 0
        self._label = self._plan.label
        self._runs[0] += 1

    def _run_fallback(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self._plan.fallback is None:
            raise InferenceFailed(f"{self._plan.label} is unavailable: {self._last_error}")
        if self._fallback is None:
            try:
                self._fallback = self._plan.fallback()
            except ApplianceError as err:
                raise InferenceFailed(
                    f"{self._plan.label} failed and the CPU fallback cannot start: {err}"
                ) from err
        outputs = self._fallback.run(inputs)
        conform(outputs, self._fallback.outputs, self._plan.outputs)
        self._label = f"{self._fallback.label}:fallback({self._plan.label})"
        self._runs[1] += 1
        return outputs

    def status(self) -> ContextStatus:
        unhealthy = self._failures > 0
        return ContextStatus(
            label=self._plan.label,
            healthy=not unhealthy,
            running_on=self._label,
            failures=self._total_failures,
            last_error=self._last_error,
            retry_in_s=max(self._next_retry - self._clock(), 0.0) if unhealthy else None,
            primary_runs=self._runs[0],
            fallback_runs=self._runs[1],
        )

    def close(self) -> None:
        with self._lock:
            for context in (self._primary, self._fallback):
                if context is not None:
                    context.close()
            self._primary = self._fallback = None


def context_status(contexts: Sequence[Context]) -> list[dict[str, Any]]:
    """Health of every context of a runtime, for /api/v1/status (plain contexts are always healthy)."""
    rows: list[dict[str, Any]] = []
    for context in contexts:
        if isinstance(context, FailoverContext):
            rows.append(context.status().to_json())
        else:
            rows.append({"label": context.label, "healthy": True, "running_on": context.label})
    return rows
