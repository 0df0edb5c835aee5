"""Results back to the microcontroller: RESULT messages and reject-gate IO_SET pulses, by config rules;
and TRIGGERs from it (a photo-eye) turned into inspections, like a photo-eye wired to a vision sensor.

Every result is sent at most once. A RESULT's `ref_seq` names the message it answers: the TRIGGER of
a triggered inspection, else (with `results = "all"`) the SENSOR_FRAME the result was computed from,
else `REF_SEQ_NONE` (0xFFFF). RESULT and IO_SET carry deadlines counted from the trigger's arrival
(or the result): the session drops and counts them when the device has not ACKed them in time, so a
device that was BUSY never gets a stale burst that rejects the wrong parts.

PASS / FAIL is the active inspection job's verdict (else the [inspection] rule). Protocol 1.1 has
no field for the per-region verdict or the NG reason, and no job-change message: a microcontroller
gets the part's verdict only (REST, Modbus and the UI change jobs).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

from firmware_bridge import IoSet, Result, Verdict
from firmware_bridge.protocol import REF_SEQ_NONE

from appliance.config import InspectionConfig, SerialConfig
from appliance.errors import ApplianceError
from appliance.pipeline import results
from appliance.pipeline.inspection import Inspector, TriggerOutcome
from appliance.sources.serial import QueuedTrigger, SerialLink

logger = logging.getLogger(__name__)

NO_LABEL = -1
POLL_S = 0.2
ANSWERED_MEMORY = 512


def to_message(result: results.Result, ok: bool, ref_seq: int) -> Result:
    score = round((result.score or 0.0) * 1000)
    label = NO_LABEL if result.label_id is None else result.label_id
    return Result(
        result_id=result.seq & 0xFFFFFFFF,
        ref_seq=ref_seq,
        label=label,
        score_permille=max(0, min(score, 1000)),
        verdict=Verdict.PASS if ok else Verdict.FAIL,
    )


class SerialSink:
    def __init__(self, link: SerialLink, inspector: Inspector, trigger: Callable[[], TriggerOutcome]) -> None:
        self.link = link
        self.inspector = inspector
        self._trigger = trigger
        self.sent = 0
        self.rejects = 0
        self.trigger_errors = 0
        self._lock = threading.Lock()
        self._inspecting = False
        self._held: list[tuple[results.Result, float]] = []
        self._answered: deque[int] = deque(maxlen=ANSWERED_MEMORY)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve_triggers, name="serial-triggers", daemon=True)

    @property
    def config(self) -> SerialConfig:
        return self.link.config

    @property
    def rule(self) -> InspectionConfig:
        return self.inspector.rule

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __call__(self, result: results.Result) -> None:
        """Bus subscriber. With results = "all" every result is sent once; one that a running trigger
        may be waiting for is held until the trigger thread knows which result answers it."""
        if self.config.results != "all":
            return
        now = time.monotonic()
        with self._lock:
            if result.seq in self._answered:
                return  # the trigger thread sent it already, as the answer to its TRIGGER
            if self._inspecting:
                self._held.append((result, now))
                return
            self._answered.append(result.seq)
        self._output(result, self.inspector.judge(result), self._ref_of(result), now)

    def _ref_of(self, result: results.Result) -> int:
        ref = self.link.frame_ref(result.source, result.frame_id)
        return REF_SEQ_NONE if ref is None else ref

    def _output(self, result: results.Result, ok: bool, ref_seq: int, origin: float) -> None:
        """Send RESULT (and the reject pulse) with deadlines counted from `origin` (monotonic)."""

        def remaining(ms: int) -> float:
            return origin + ms / 1000 - time.monotonic()

        if self.config.results != "none":
            self.link.send(to_message(result, ok, ref_seq), remaining(self.config.result_deadline_ms))
            self.sent += 1
        when = self.config.reject_when
        if self.config.reject_output >= 0 and ((when == "fail" and not ok) or (when == "pass" and ok)):
            pulse = IoSet(self.config.reject_output, True, self.config.reject_pulse_ms)
            self.link.send(pulse, remaining(self.config.io_deadline_ms))
            self.rejects += 1

    def _serve_triggers(self) -> None:
        while not self._stop.is_set():
            try:
                queued = self.link.triggers.get(timeout=POLL_S)
            except queue.Empty:
                continue
            self._run(queued)

    def _run(self, queued: QueuedTrigger) -> None:
        with self._lock:
            self._inspecting = True
        outcome: TriggerOutcome | None = None
        try:
            outcome = self._trigger()
        except ApplianceError as err:
            self.trigger_errors += 1
            logger.warning("photo-eye trigger %d not inspected: %s", queued.trigger.seq, err)
        finally:
            with self._lock:
                self._inspecting = False
                held, self._held = self._held, []
                if outcome is not None:
                    self._answered.append(outcome.result.seq)
        if outcome is not None:
            self._output(outcome.result, outcome.ok, queued.trigger.seq, queued.arrived)
        for result, at in held:
            self._release(result, at, outcome)

    def _release(self, result: results.Result, at: float, outcome: TriggerOutcome | None) -> None:
        with self._lock:
            if (outcome is not None and result.seq == outcome.result.seq) or result.seq in self._answered:
                return
            self._answered.append(result.seq)
        self._output(result, self.inspector.judge(result), self._ref_of(result), at)

    def status(self) -> dict[str, int]:
        return {"sent": self.sent, "rejects": self.rejects, "trigger_errors": self.trigger_errors}
