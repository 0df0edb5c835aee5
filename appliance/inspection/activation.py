"""The active inspection job: switched in only once it is proven, atomically between triggers.

`JobSwitch.activate(number)` reads the job, opens its second-stage classifier (if any) and proves it
on one crop, then - with no trigger running (the `Gate`) - activates the job's pinned model through
the model manager (which proves it on the source's newest frame, as any model activation), and only
then swaps the job in. Any failure leaves the previous job and model in place. Both models are
loaded once per activation, not per trigger. The active job number is kept in
data_dir/jobs/active.json, so a restart comes back with it.

`judge(result, image)` runs on the pipeline's postprocess thread: the second stage (crops batched
into the classifier) and the job's region rules, giving the result its `verdict`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.atomic import write_bytes
from appliance.backends.registry import Opener
from appliance.errors import ApplianceError, Busy, ModelRejected
from appliance.inspection.chain import CropClassifier, second_stage
from appliance.inspection.recipe import Job
from appliance.inspection.rules import evaluate
from appliance.inspection.store import JobStore
from appliance.models.manifest import Manifest
from appliance.models.registry import Registry
from appliance.pipeline.results import Result

logger = logging.getLogger(__name__)

ACTIVE_FILE = "active.json"
SWITCH_TIMEOUT_S = 10.0
PROOF_CROP = 32  # px: the grey crop a second stage is proven on


class Gate:
    """Triggers share it; a job switch takes it alone, once the running triggers are done."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._switching = False

    @contextlib.contextmanager
    def trigger(self, timeout: float) -> Iterator[None]:
        with self._cond:
            if not self._cond.wait_for(lambda: not self._switching, timeout):
                raise Busy("a job change is running: trigger again")
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def switch(self, timeout: float) -> Iterator[None]:
        with self._cond:
            if not self._cond.wait_for(lambda: not self._switching, timeout):
                raise Busy("another job change is running")
            self._switching = True
            try:
                if not self._cond.wait_for(lambda: self._running == 0, timeout):
                    raise Busy(f"triggers still running after {timeout:g} s: job not changed")
            except BaseException:
                self._switching = False
                self._cond.notify_all()
                raise
        try:
            yield
        finally:
            with self._cond:
                self._switching = False
                self._cond.notify_all()


@dataclass(frozen=True)
class Loaded:
    job: Job
    classifier: CropClassifier | None
    since: float


class JobSwitch:
    """Which job is active, and its verdict on each result; thread-safe."""

    def __init__(
        self,
        store: JobStore,
        registry: Registry,
        activate_model: Callable[[str, int], Manifest],
        opener: Opener | None = None,
    ) -> None:
        self.store, self.registry = store, registry
        self.activate_model = activate_model
        self.opener = opener  # the service's backends, for the second stage
        self.gate = Gate()
        self.changes = 0
        self.last_error: str | None = None
        self._loaded: Loaded | None = None
        self._lock = threading.Lock()  # judging and swapping
        self._switch_lock = threading.Lock()  # one activation at a time

    @property
    def state_path(self) -> Path:
        return self.store.root / ACTIVE_FILE

    def active(self) -> Job | None:
        loaded = self._loaded
        return loaded.job if loaded is not None else None

    def number(self) -> int:
        """The active job's number; 0 when none is active."""
        job = self.active()
        return job.number if job is not None else 0

    def activate(self, number: int, version: int | None = None) -> Job:
        """Make job `number` (its newest or the given version) the active one, proven first."""
        with self._switch_lock:
            job = self.store.get(number, version)
            self.registry.get(job.model.name, job.model.version)  # NotFound names the missing model
            classifier = self._classifier(job)
            try:
                with self.gate.switch(SWITCH_TIMEOUT_S):
                    self.activate_model(job.model.name, job.model.version)
                    self._install(Loaded(job, classifier, time.time()))
            except BaseException:
                if classifier is not None:
                    classifier.close()
                raise
            self._save_state(job)
            self.changes += 1
            self.last_error = None
            logger.info("job %d v%d (%s) is active", job.number, job.version, job.name)
            return job

    def deactivate(self) -> None:
        """No job: results are judged by the global [inspection] rule again."""
        with self._switch_lock, self.gate.switch(SWITCH_TIMEOUT_S):
            self._install(None)
            self.state_path.unlink(missing_ok=True)

    def restore(self) -> None:
        """At start: activate the job that was active before the restart (logged if it cannot be)."""
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            number = int(state["number"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.error("cannot read %s: %s; no job is active", self.state_path, err)
            return
        try:
            self.activate(number)
        except ApplianceError as err:
            self.last_error = f"job {number} could not be activated at start: {err}"
            logger.error("%s", self.last_error)

    def wants_image(self) -> bool:
        """A job is active: its second stage, archive and dataset need the whole frame."""
        return self._loaded is not None

    def judge(self, result: Result, image: np.ndarray | None) -> Result:
        """`result` with the active job's verdict (second stage first); unchanged without a job."""
        with self._lock:
            loaded = self._loaded
            if loaded is None:
                return result
            job = loaded.job
            same_model = result.model == job.model.name and result.model_version == job.model.version
            if loaded.classifier is not None and image is not None and same_model and result.detections:
                result = second_stage(result, image, loaded.classifier)
            verdict = evaluate(job, result)
        frame = result.image if result.image is not None else image  # the archive and dataset keep it
        return dataclasses.replace(result, verdict=verdict.to_json(), image=frame)

    def status(self) -> dict[str, Any]:
        loaded = self._loaded
        return {
            "job": None if loaded is None else loaded.job.to_json(),
            "since": None if loaded is None else loaded.since,
            "changes": self.changes,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = self._loaded, None
        if loaded is not None and loaded.classifier is not None:
            loaded.classifier.close()

    def _classifier(self, job: Job) -> CropClassifier | None:
        if job.second_stage is None:
            return None
        manifest = self.registry.get(job.second_stage.name, job.second_stage.version)
        classifier = CropClassifier(manifest, self.registry.files_of(manifest), self.opener)
        try:
            grey = np.full((PROOF_CROP, PROOF_CROP, 3), 128, np.uint8)
            classifier.classify([grey])
        except (ApplianceError, ValueError, RuntimeError) as err:
            classifier.close()
            raise ModelRejected(f"second stage {manifest.ref} cannot classify a crop: {err}") from err
        return classifier

    def _install(self, loaded: Loaded | None) -> None:
        with self._lock:
            old, self._loaded = self._loaded, loaded
            if old is not None and old.classifier is not None:
                old.classifier.close()  # under the lock: no judge is using it

    def _save_state(self, job: Job) -> None:
        data = json.dumps({"number": job.number, "version": job.version}).encode()
        try:
            write_bytes(self.state_path, data)
        except OSError as err:
            logger.warning("job %d is active but %s was not written: %s", job.number, self.state_path, err)
