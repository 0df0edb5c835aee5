"""Results back to the microcontroller: RESULT messages and reject-gate IO_SET pulses, by config rules;
and TRIGGERs from it (a photo-eye) turned into inspections, like a photo-eye wired to a vision sensor."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from firmware_bridge import IoSet, Result, Trigger, Verdict

from appliance.config import InspectionConfig, SerialConfig
from appliance.errors import ApplianceError
from appliance.pipeline import results
from appliance.pipeline.inspection import Inspector, TriggerOutcome, passes
from appliance.sources.serial import SerialLink

logger = logging.getLogger(__name__)

NO_LABEL = -1
POLL_S = 0.2


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
        """Bus subscriber. With results = "all" every result is sent (ref_seq 0) and may reject;
        otherwise only triggered inspections are answered, by the trigger thread. Rejects happen once."""
        if self.config.results == "all":
            self._output(result, passes(result, self.rule), ref_seq=0, reject=True)

    def _output(self, result: results.Result, ok: bool, ref_seq: int, reject: bool) -> None:
        if self.config.results != "none":
            self.link.send(to_message(result, ok, ref_seq))
            self.sent += 1
        when = self.config.reject_when
        if (
            reject
            and self.config.reject_output >= 0
            and ((when == "fail" and not ok) or (when == "pass" and ok))
        ):
            self.link.send(IoSet(self.config.reject_output, True, self.config.reject_pulse_ms))
            self.rejects += 1

    def _serve_triggers(self) -> None:
        while not self._stop.is_set():
            try:
                trigger = self.link.triggers.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if self.config.trigger:
                self._run(trigger)

    def _run(self, trigger: Trigger) -> None:
        try:
            outcome = self._trigger()
        except ApplianceError as err:
            self.trigger_errors += 1
            logger.warning("photo-eye trigger %d not inspected: %s", trigger.seq, err)
            return
        self._output(outcome.result, outcome.ok, trigger.seq, reject=self.config.results != "all")

    def status(self) -> dict[str, int]:
        return {"sent": self.sent, "rejects": self.rejects, "trigger_errors": self.trigger_errors}
