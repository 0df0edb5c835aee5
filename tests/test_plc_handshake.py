"""The handshake state machine and the register encoding, without Modbus (fakes for the appliance)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.errors import (
    ERROR_INTERNAL,
    ERROR_TIMEOUT,
    BackendUnavailable,
    Busy,
    ModelRejected,
    NoActiveModel,
    NotFound,
    SourceError,
    TriggerTimeout,
    error_code,
)
from appliance.inspection.counters import Counters
from appliance.pipeline.inspection import TriggerOutcome
from appliance.pipeline.results import Result, Timings
from appliance.plc.handshake import Actions, Handshake, JobActions
from appliance.plc.registers import (
    COUNTER_WORDS,
    DI_BUSY,
    DI_ERROR,
    DI_PASS,
    DI_READY,
    DI_RESULT_VALID,
    ERROR_BUSY,
    ERROR_JOB_LOAD,
    ERROR_MODEL_LOAD,
    ERROR_NO_FRAME,
    ERROR_NO_MODEL,
    ERROR_UNKNOWN_JOB,
    ERROR_UNMAPPED_SLOT,
    IR_COUNTERS_JOB,
    IR_JOB,
    IR_LABEL_ID,
    IR_LATENCY_HIGH,
    IR_LATENCY_LOW,
    IR_SCORE,
    IR_SEQUENCE,
    NO_LABEL,
    NO_YIELD,
    Reading,
    code_of,
    discrete_inputs,
    input_registers,
)


def make_result(seq: int = 1, label_id: int | None = 3, total_ms: float = 12.5) -> Result:
    return Result(
        seq=seq,
        frame_id=seq,
        ts=time.time(),
        source="test",
        model="m",
        model_version=1,
        task="classify",
        backend="litert",
        label=None if label_id is None else f"label{label_id}",
        label_id=label_id,
        score=0.8765 if label_id is not None else None,
        count=2,
        detections=(),
        timings=Timings(1.0, total_ms - 2.0, 1.0, total_ms),
    )


class FakeAppliance:
    """Triggers that wait for `release` (so a test can look at busy) and a model manager."""

    def __init__(self, outcome: Callable[[], TriggerOutcome]) -> None:
        self.release = threading.Event()
        self.model: str | None = "a"
        self._outcome = outcome

    def trigger(self) -> TriggerOutcome:
        assert self.release.wait(5)
        return self._outcome()

    def activate(self, name: str) -> None:
        if name == "broken":
            raise ModelRejected("does not load")
        self.model = name

    def actions(self) -> Actions:
        return Actions(self.trigger, self.activate, lambda: self.model, ("a", "b", "broken"))


def settle(handshake: Handshake, condition: Callable[[Reading], bool]) -> Reading:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        reading = handshake.reading()
        if condition(reading):
            return reading
        time.sleep(0.002)
    raise AssertionError(f"handshake stayed {handshake.reading()}")


def test_a_trigger_while_busy_is_refused_not_queued() -> None:
    fake = FakeAppliance(lambda: TriggerOutcome(make_result(seq=65536 + 7), ok=True))
    changes: list[Reading] = []
    handshake = Handshake(fake.actions())
    handshake.on_change = lambda: changes.append(handshake.reading())
    try:
        assert handshake.trigger()
        busy = handshake.reading()
        assert busy.busy and not busy.ready and not busy.result_valid
        assert not handshake.trigger()  # refused
        refused = handshake.reading()
        assert refused.busy and refused.error and refused.error_code == ERROR_BUSY
        assert not handshake.change_job(2)  # a job change while busy is refused too
        fake.release.set()
        done = settle(handshake, lambda r: r.result_valid)
        assert done.ready and done.passed and not done.busy and not done.error and done.error_code == 0
        assert done.sequence == 65536 + 7 and input_registers(done)[IR_SEQUENCE] == 7  # wraps
        assert handshake.counters.triggers == 1 and handshake.counters.refused == 2
        assert changes, "every change is signalled"
        handshake.acknowledge()
        acked = handshake.reading()
        assert not acked.result_valid and not acked.passed and acked.sequence == done.sequence
    finally:
        fake.release.set()
        handshake.close()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SourceError("no frame"), ERROR_NO_FRAME),
        (NoActiveModel("no model"), ERROR_NO_MODEL),
        (Busy("queue full"), ERROR_BUSY),
        (TriggerTimeout("no result within 5 s"), ERROR_TIMEOUT),
        (RuntimeError("bug"), ERROR_INTERNAL),
    ],
)
def test_trigger_errors_give_their_code(error: Exception, code: int) -> None:
    def fail() -> TriggerOutcome:
        raise error

    fake = FakeAppliance(fail)
    fake.release.set()
    handshake = Handshake(fake.actions())
    try:
        handshake.trigger()
        reading = settle(handshake, lambda r: not r.busy)
        assert reading.error and reading.error_code == code and not reading.result_valid
        assert discrete_inputs(reading)[DI_ERROR] and discrete_inputs(reading)[DI_READY]
    finally:
        handshake.close()


def test_job_changes() -> None:
    fake = FakeAppliance(lambda: TriggerOutcome(make_result(), ok=False))
    handshake = Handshake(fake.actions())
    try:
        assert handshake.reading().model_slot == 1
        assert not handshake.change_job(0)  # slot 0 keeps the model
        assert handshake.change_job(2)
        assert settle(handshake, lambda r: r.model_slot == 2).error_code == 0
        assert fake.model == "b"
        assert handshake.change_job(3)  # the model of slot 3 does not load: the old one runs on
        failed = settle(handshake, lambda r: r.error)
        assert failed.error_code == ERROR_MODEL_LOAD and failed.model_slot == 2 and fake.model == "b"
        assert not handshake.change_job(4)
        assert handshake.reading().error_code == ERROR_UNMAPPED_SLOT
        fake.model = None  # no active model: not ready
        assert not handshake.reading().ready and handshake.reading().model_slot == 0
    finally:
        handshake.close()


def test_an_unmapped_slot_does_not_end_a_running_trigger() -> None:
    fake = FakeAppliance(lambda: TriggerOutcome(make_result(), ok=True))
    handshake = Handshake(fake.actions())
    try:
        handshake.trigger()
        handshake.change_job(99)
        reading = handshake.reading()
        assert reading.busy and reading.error_code == ERROR_UNMAPPED_SLOT
        fake.release.set()
        assert settle(handshake, lambda r: r.result_valid).error_code == 0
    finally:
        fake.release.set()
        handshake.close()


def test_register_encoding() -> None:
    reading = Reading(
        ready=True, result_valid=True, passed=True, sequence=70_000, label_id=3, score=877, latency_us=70_000
    )
    registers = input_registers(reading)
    assert registers[IR_SEQUENCE] == 70_000 - 65_536
    assert registers[IR_LATENCY_HIGH] == 1 and registers[IR_LATENCY_LOW] == 70_000 - 65_536
    assert registers[IR_LABEL_ID] == 3 and registers[IR_SCORE] == 877
    bits = discrete_inputs(reading)
    assert bits[DI_READY] and bits[DI_RESULT_VALID] and bits[DI_PASS] and not bits[DI_BUSY]
    assert input_registers(Reading(label_id=NO_LABEL, latency_us=2**40))[IR_LATENCY_HIGH] == 0xFFFF


def test_trigger_results_fill_the_registers() -> None:
    fake = FakeAppliance(lambda: TriggerOutcome(make_result(seq=5, label_id=None, total_ms=70.0), ok=False))
    fake.release.set()
    handshake = Handshake(fake.actions())
    try:
        handshake.trigger()
        registers = input_registers(settle(handshake, lambda r: r.result_valid))
        assert registers[IR_LABEL_ID] == NO_LABEL and registers[IR_SCORE] == 0
        assert registers[IR_LATENCY_HIGH] << 16 | registers[IR_LATENCY_LOW] == 70_000
    finally:
        handshake.close()


def test_plc_codes_match_the_appliance_error_codes() -> None:
    assert code_of(Busy("x")) == error_code(Busy("x")) == ERROR_BUSY
    assert code_of(SourceError("x")) == ERROR_NO_FRAME
    assert code_of(NoActiveModel("x")) == ERROR_NO_MODEL
    assert code_of(BackendUnavailable("x")) == ERROR_MODEL_LOAD
    assert code_of(NotFound("x")) == ERROR_INTERNAL
    assert code_of(TriggerTimeout("x")) == ERROR_TIMEOUT


class FakeJobs:
    """Job changes by number against real counters (SQLite): 7 works, 8 cannot load, others unknown."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.job = 0

    def change(self, number: int) -> None:
        if number == 8:
            raise ModelRejected("job 8: second stage does not load")
        if number != 7:
            raise NotFound(f"no job {number}")
        self.job = number

    def actions(self) -> JobActions:
        return JobActions(
            self.change,
            lambda: self.job,
            self.counters.read,
            self.counters.reset,
            lambda: self.counters.missed(self.job),
        )


def test_job_number_changes_missed_triggers_and_counter_reset(tmp_path: Path) -> None:
    counters = Counters(tmp_path / "counters.db")
    jobs = FakeJobs(counters)
    fake = FakeAppliance(lambda: TriggerOutcome(make_result(), ok=True))
    handshake = Handshake(dataclasses.replace(fake.actions(), jobs=jobs.actions()))
    try:
        for number, code in ((5, ERROR_UNKNOWN_JOB), (8, ERROR_JOB_LOAD)):
            assert handshake.change_job_number(number)
            failed = settle(handshake, lambda r: not r.busy)
            assert failed.error and failed.error_code == code and failed.job == 0
        assert handshake.change_job_number(7)
        assert settle(handshake, lambda r: not r.busy).job == 7
        assert input_registers(handshake.reading())[IR_JOB] == 7

        assert handshake.trigger()
        assert not handshake.trigger()  # refused while busy: a missed trigger of job 7
        fake.release.set()
        settle(handshake, lambda r: r.result_valid)
        counters.record(7, "ng", 4.0)
        words = input_registers(handshake.reading())[IR_COUNTERS_JOB : IR_COUNTERS_JOB + COUNTER_WORDS]
        assert words[:10] == [0, 1, 0, 0, 0, 1, 0, 0, 0, 1]  # triggers 1, ok 0, ng 1, errors 0, missed 1
        assert words[10] == 0 and words[11:13] == [0, 4000]  # yield 0.00 %, min 4000 us
        handshake.reset_counters()
        after = handshake.reading()
        assert after.total_counters[:10] == (0,) * 10 and after.total_counters[10] == NO_YIELD
    finally:
        fake.release.set()
        handshake.close()
        counters.close()
