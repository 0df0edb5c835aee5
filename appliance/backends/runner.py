"""One NPU context on its own thread: built, run, rebuilt there, never on a frame's call.

`NPURunner` owns one vendor context (e.g. RKNNLite pinned to one core) and the one thread that ever
touches it (sharing a context across threads has crashed boards, airockchip/rknn-toolkit2#533). The
thread builds the context (load + init: hundreds of ms), then serves submitted inferences in order.
When an inference fails, the thread releases the context and builds a new one after a backoff that
doubles up to a cap; callers meanwhile see `usable() == False` and go elsewhere. A caller that waits
longer than its deadline marks the runner hung (`mark_hung`): nothing more is submitted to it until
the blocked call returns (the RKNPU driver gives up on a stuck job after its timeout), after which
the context is rebuilt like after any failure.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from appliance.backends.base import Context
from appliance.backoff import Backoff
from appliance.errors import ApplianceError, InferenceFailed

logger = logging.getLogger(__name__)

Factory = Callable[[], Context]
Clock = Callable[[], float]
POLL_S = 0.5
LATENCY_SAMPLES = 64
STATES = ("starting", "ok", "hung", "failed", "closed")


@dataclass(frozen=True)
class RetryPolicy(Backoff):
    """Rebuilding a failed context: wait `first_s` after the first failure, doubling, at most `max_s`."""

    first_s: float = 5.0
    max_s: float = 300.0


@dataclass(frozen=True)
class RunnerStatus:
    label: str
    state: str
    since_s: float  # how long it has been in this state
    failures: int
    hangs: int
    last_error: str | None
    retry_in_s: float | None
    runs: int


@dataclass
class _Call:
    inputs: Sequence[np.ndarray]
    future: Future[list[np.ndarray]]


class NPURunner:
    def __init__(self, label: str, factory: Factory, policy: RetryPolicy, hint: str = "") -> None:
        self.label = label
        self._factory = factory
        self._policy = policy
        self._hint = hint
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._state = "starting"
        self._since = time.monotonic()
        self._failures = 0  # consecutive
        self._total_failures = 0
        self._hangs = 0
        self._runs = 0
        self._pending = 0
        self._retry_at: float | None = None
        self._error: str | None = None
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"npu-{label}", daemon=True)
        self._thread.start()

    # --- caller side -------------------------------------------------------------------------
    def wait_started(self, timeout: float) -> bool:
        """True once the first build attempt finished (either way)."""
        return self._started.wait(timeout)

    def usable(self) -> bool:
        return self._state == "ok"

    @property
    def pending(self) -> int:
        return self._pending

    def latencies(self) -> list[float]:
        with self._lock:
            return list(self._latencies)

    def submit(self, inputs: Sequence[np.ndarray]) -> Future[list[np.ndarray]] | None:
        """Queue one inference; None when the runner is not usable now."""
        with self._lock:
            if self._state != "ok":
                return None
            self._pending += 1
        call = _Call(inputs, Future())
        self._queue.put(call)
        return call.future

    def mark_hung(self, waited_s: float) -> None:
        """A caller gave up after `waited_s`: submit nothing more until the blocked call returns."""
        with self._lock:
            if self._state != "ok":
                return
            self._set_state("hung")
            self._hangs += 1
            self._error = f"inference did not return within its deadline ({waited_s:.2f} s)"
        logger.warning(
            "%s hung: no result within %.2f s; its frames run elsewhere until it returns and is rebuilt",
            self.label,
            waited_s,
        )

    def status(self) -> RunnerStatus:
        with self._lock:
            now = time.monotonic()
            retry = None if self._retry_at is None else max(self._retry_at - now, 0.0)
            return RunnerStatus(
                self.label,
                self._state,
                now - self._since,
                self._total_failures,
                self._hangs,
                self._error,
                retry,
                self._runs,
            )

    def close(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._state != "hung":  # a call blocked in the driver keeps its (daemon) thread
            self._thread.join(timeout=2)

    # --- runner thread -----------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state, self._since = state, time.monotonic()

    def _build(self) -> Context | None:
        try:
            context = self._factory()
        except ApplianceError as err:
            self._failed(f"cannot start: {err}")
            return None
        with self._lock:
            recovered = self._failures > 0
            self._failures, self._retry_at = 0, None
            self._set_state("ok")
        if recovered:
            logger.info("%s is back (context rebuilt)", self.label)
        return context

    def _failed(self, reason: str) -> None:
        reason = reason.removeprefix(f"{self.label}: ")
        with self._lock:
            self._failures += 1
            self._total_failures += 1
            self._error = reason
            delay = self._policy.delay(self._failures)
            self._retry_at = time.monotonic() + delay
            was_hung = self._state == "hung"
            self._set_state("failed")
            first = self._failures == 1
        if first and not was_hung:
            hint = f" To fix: {self._hint}" if self._hint else ""
            logger.warning(
                "%s failed: %s; its frames run elsewhere, rebuilt in %.1f s.%s",
                self.label,
                reason,
                delay,
                hint,
            )
        else:
            logger.debug("%s still failing (%s); next rebuild in %.1f s", self.label, reason, delay)

    def _drain(self, error: ApplianceError) -> None:
        """Fail calls queued for a context that is gone (their callers move on)."""
        while True:
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                return
            if call is not None:
                self._done(call, None, error)

    def _done(self, call: _Call, outputs: list[np.ndarray] | None, error: ApplianceError | None) -> None:
        with self._lock:
            self._pending -= 1
        if not call.future.set_running_or_notify_cancel():
            return
        if error is not None:
            call.future.set_exception(error)
        else:
            assert outputs is not None
            call.future.set_result(outputs)

    def _loop(self) -> None:
        context: Context | None = None
        while not self._stop.is_set():
            if context is None:
                context = self._build()
                self._started.set()
                if context is None:
                    self._drain(InferenceFailed(f"{self.label} is being rebuilt"))
                    self._stop.wait(self._retry_delay())
                    continue
            try:
                call = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if call is None:
                break
            context = self._serve(context, call)
        if context is not None:
            context.close()
        with self._lock:
            self._set_state("closed")
        self._drain(InferenceFailed(f"{self.label} is closed"))

    def _retry_delay(self) -> float:
        with self._lock:
            return 0.0 if self._retry_at is None else max(self._retry_at - time.monotonic(), 0.0)

    def _serve(self, context: Context, call: _Call) -> Context | None:
        started = time.perf_counter()
        try:
            outputs = context.run(call.inputs)
        except ApplianceError as err:
            self._done(call, None, err)
            context.close()
            self._failed(str(err))
            self._drain(InferenceFailed(f"{self.label} failed: {err}"))
            self._stop.wait(self._retry_delay())
            return None
        with self._lock:
            self._latencies.append(time.perf_counter() - started)
            self._runs += 1
            if self._state == "hung":  # it was slow, not dead: a late answer brings it back
                self._set_state("ok")
                logger.info("%s answered again after a hang", self.label)
        self._done(call, outputs, None)
        return context
