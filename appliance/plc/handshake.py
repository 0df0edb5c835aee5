"""The vision-sensor handshake as a state machine, independent of Modbus.

A PLC request (trigger, results ack, model-slot or job-number change, counter reset) arrives on
the Modbus server's event loop and must not block it: `trigger()`, `change_job()` and
`change_job_number()` only flip the state and hand the work to one worker thread (a counter reset
is one short SQLite transaction). A request while busy is refused with ERROR_BUSY, never queued.
Every change calls `on_change`, which lets the Modbus layer write the new `Reading` into its registers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from appliance.errors import ERROR_INTERNAL, ApplianceError, NotFound
from appliance.inspection.counters import TOTAL, CounterSnapshot
from appliance.pipeline.inspection import TriggerOutcome
from appliance.plc.registers import (
    ERROR_BUSY,
    ERROR_JOB_LOAD,
    ERROR_MODEL_LOAD,
    ERROR_NONE,
    ERROR_UNKNOWN_JOB,
    ERROR_UNMAPPED_SLOT,
    NO_LABEL,
    SCORE_SCALE,
    Reading,
    code_of,
    counter_words,
)

logger = logging.getLogger(__name__)

KEEP_MODEL = 0  # slot 0: keep the current model
KEEP_JOB = 0  # job number 0: keep the current job


@dataclass(frozen=True)
class JobActions:
    """Inspection jobs and production counters, as the PLC drives them."""

    change: Callable[[int], object]  # activate job N, proven first; blocking; raises ApplianceError
    active: Callable[[], int]  # the active job's number, 0: none
    counters: Callable[[int], CounterSnapshot]  # of job N (0: the total)
    reset: Callable[[], object]  # zero every counter
    missed: Callable[[], None]  # count a trigger refused while busy


def words_of(snapshot: CounterSnapshot) -> tuple[int, ...]:
    s = snapshot
    counts = (s.triggers, s.ok, s.ng, s.errors, s.missed)
    return counter_words(counts, s.yield_pct, (s.time_min_ms, s.time_avg_ms, s.time_max_ms), s.reset_at)


@dataclass(frozen=True)
class Actions:
    """What the handshake drives: the appliance's services, or fakes in tests."""

    trigger: Callable[[], TriggerOutcome]  # blocking; raises ApplianceError
    activate: Callable[[str], object]  # blocking job change; raises ApplianceError
    active_model: Callable[[], str | None]
    slots: tuple[str, ...] = ()  # slot N (1-based) runs slots[N - 1]
    jobs: JobActions | None = None


@dataclass(frozen=True)
class Counters:
    triggers: int = 0
    results: int = 0
    errors: int = 0
    refused: int = 0  # requests while busy
    job_changes: int = 0


class Handshake:
    """Thread-safe: PLC requests come from the Modbus loop, outcomes from the worker thread."""

    def __init__(self, actions: Actions, on_change: Callable[[], None] = lambda: None) -> None:
        self.actions = actions
        self.on_change = on_change
        self.counters = Counters()
        self._state = Reading()
        self._lock = threading.Lock()
        self._closed = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plc-handshake")

    def reading(self) -> Reading:
        """The current state, with ready and the model slot as they are now."""
        with self._lock:
            state = self._state
        model = self.actions.active_model()
        slot = self.actions.slots.index(model) + 1 if model in self.actions.slots else 0
        state = replace(state, ready=model is not None and not state.busy, model_slot=slot)
        jobs = self.actions.jobs
        if jobs is None:
            return state
        job = jobs.active()
        return replace(
            state,
            job=job,
            job_counters=words_of(jobs.counters(job)),
            total_counters=words_of(jobs.counters(TOTAL)),
        )

    def trigger(self) -> bool:
        """Start one inspection unless busy; True when it was accepted."""
        if not self._begin():
            if self.actions.jobs is not None:
                self.actions.jobs.missed()
            return False
        self._count(triggers=1)
        return self._submit(self._run_trigger)

    def acknowledge(self) -> None:
        """Results ack: result valid, pass and error drop (the codes stay readable)."""
        self._update(result_valid=False, passed=False, error=False)

    def change_job(self, slot: int) -> bool:
        """Activate the model of a slot; True when the change was started."""
        if slot == KEEP_MODEL:
            return False
        if not 1 <= slot <= len(self.actions.slots):
            logger.warning("PLC asked for unmapped model slot %d", slot)
            self._count(errors=1)
            self._update(error=True, error_code=ERROR_UNMAPPED_SLOT)  # busy stays as it is
            return False
        if not self._begin():
            return False
        self._count(job_changes=1)
        return self._submit(lambda: self._run_job(slot, self.actions.slots[slot - 1]))

    def change_job_number(self, number: int) -> bool:
        """Activate inspection job `number` (proven first); True when the change was started."""
        jobs = self.actions.jobs
        if number == KEEP_JOB or jobs is None:
            return False
        if not self._begin():
            return False
        self._count(job_changes=1)
        return self._submit(lambda: self._run_job_number(jobs, number))

    def reset_counters(self) -> None:
        """Zero the production counters (a short SQLite transaction)."""
        if self.actions.jobs is None:
            return
        try:
            self.actions.jobs.reset()
        except (ApplianceError, OSError) as err:
            logger.error("PLC counter reset failed: %s", err)
            self._count(errors=1)
            self._update(error=True, error_code=ERROR_INTERNAL)
            return
        logger.info("PLC reset the production counters")
        self.on_change()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._worker.shutdown(wait=True, cancel_futures=True)

    def _begin(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            accepted = not self._state.busy
            if accepted:
                self._state = _started(self._state)
            else:
                self._state = replace(self._state, error=True, error_code=ERROR_BUSY)
                self.counters = replace(self.counters, refused=self.counters.refused + 1)
        self.on_change()
        return accepted

    def _submit(self, work: Callable[[], None]) -> bool:
        try:
            self._worker.submit(work)
        except RuntimeError:  # closed meanwhile: the appliance is stopping
            self._fail(ERROR_INTERNAL)
            return False
        return True

    def _run_trigger(self) -> None:
        try:
            outcome = self.actions.trigger()
        except Exception as err:
            code = code_of(err)
            if isinstance(err, ApplianceError):
                logger.warning("PLC trigger failed with error code %d: %s", code, err)
            else:
                logger.exception("PLC trigger failed")
            self._fail(code)
            return
        result = outcome.result
        self._count(results=1)
        self._update(
            busy=False,
            result_valid=True,
            passed=outcome.ok,
            error=False,  # a request refused while this one ran is forgotten: each outcome stands alone
            error_code=ERROR_NONE,
            sequence=result.seq,
            label_id=NO_LABEL if result.label_id is None else result.label_id,
            score=round((result.score or 0.0) * SCORE_SCALE),
            count=result.count,
            latency_us=round(result.timings.total_ms * 1000),
            **verdict_registers(result.verdict),
        )

    def _run_job(self, slot: int, name: str) -> None:
        try:
            if self.actions.active_model() != name:
                self.actions.activate(name)
        except ApplianceError as err:
            logger.error("PLC job change to slot %d (%s) failed: %s", slot, name, err)
            self._fail(ERROR_MODEL_LOAD)
            return
        except Exception:
            logger.exception("PLC job change to slot %d (%s) failed", slot, name)
            self._fail(ERROR_INTERNAL)
            return
        logger.info("PLC job change: slot %d, model %s", slot, name)
        self._update(busy=False, error=False, error_code=ERROR_NONE)

    def _run_job_number(self, jobs: JobActions, number: int) -> None:
        try:
            if jobs.active() != number:
                jobs.change(number)
        except NotFound as err:
            logger.error("PLC job change to job %d failed: %s", number, err)
            self._fail(ERROR_UNKNOWN_JOB)
            return
        except ApplianceError as err:
            logger.error("PLC job change to job %d failed: %s", number, err)
            self._fail(ERROR_JOB_LOAD)
            return
        except Exception:
            logger.exception("PLC job change to job %d failed", number)
            self._fail(ERROR_INTERNAL)
            return
        logger.info("PLC job change: job %d", number)
        self._update(busy=False, error=False, error_code=ERROR_NONE)

    def _fail(self, code: int) -> None:
        self._count(errors=1)
        self._update(busy=False, result_valid=False, passed=False, error=True, error_code=code)

    def _update(self, **changes: int | bool) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)  # type: ignore[arg-type]
        self.on_change()

    def _count(self, **increments: int) -> None:
        with self._lock:
            values = {k: getattr(self.counters, k) + v for k, v in increments.items()}
            self.counters = replace(self.counters, **values)


def verdict_registers(verdict: dict[str, object] | None) -> dict[str, int]:
    """The job verdict's registers of a result; zeros when no job judged it."""
    v = verdict or {}

    def number(key: str) -> int:
        value = v.get(key, 0)
        return value if isinstance(value, int) else 0

    regions = v.get("regions")
    return {
        "result_job": number("job"),
        "pass_bits": number("pass_bits"),
        "reason_code": number("reason_code"),
        "ng_region": number("ng_region"),
        "regions": len(regions) if isinstance(regions, list) else 0,
    }


def _started(state: Reading) -> Reading:
    """A request was accepted: busy, and the previous result and error are gone."""
    return replace(state, busy=True, result_valid=False, passed=False, error=False, error_code=ERROR_NONE)
