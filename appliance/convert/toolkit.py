"""The rknn-toolkit2 venv and the worker subprocess that runs in it, with its progress shown."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.backends.rknnio import FoldedInput
from appliance.errors import BackendUnavailable, ModelRejected

logger = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("worker.py")
LOG_TAIL_LINES = 15
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
# what the toolkit's log says -> what to do about it
HINTS = (
    (
        "import tensorflow",
        "the toolkit reads .tflite through TensorFlow <= 2.14: make rknn-tools RKNN_TFLITE=1 "
        "(adds tensorflow-cpu 2.14.1 to the toolkit venv), or convert from the model's .onnx",
    ),
    ("import onnx", "the toolkit venv is incomplete: rerun make rknn-tools"),
)

Progress = Callable[[str, str], None]


@dataclass(frozen=True)
class Job:
    """What the worker does; see worker.py for the meaning of each field."""

    source: Path
    target: str
    quantize: bool
    dataset: Path | None
    samples: tuple[Path, ...]
    workdir: Path
    folded: FoldedInput | None = None  # --uint8-input: mean/std for rknn.config(), raw uint8 inputs

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "target": self.target,
            "quantize": self.quantize,
            "dataset": str(self.dataset) if self.dataset else None,
            "samples": [str(p) for p in self.samples],
            "workdir": str(self.workdir),
            "mean_values": list(self.folded.mean) if self.folded else None,
            "std_values": list(self.folded.std) if self.folded else None,
        }


@dataclass(frozen=True)
class WorkerResult:
    rknn: Path
    outputs: tuple[Path, ...]
    toolkit: str


@dataclass(frozen=True)
class Toolkit:
    """The interpreter that has rknn-toolkit2 installed, and extra environment for it."""

    python: Path
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def in_venv(cls, venv: Path) -> Toolkit:
        return cls(venv / "bin" / "python")

    def check(self) -> None:
        if not self.python.exists():
            raise BackendUnavailable(
                f"no rknn-toolkit2 interpreter at {self.python}: run `make rknn-tools` (creates "
                ".venv-rknn, 5.6 GB; 6.7 GB with RKNN_TFLITE=1) or point backend.rknn_venv / --venv at "
                "your toolkit venv"
            )

    def run(self, job: Job, progress: Progress) -> WorkerResult:
        """Run the worker; progress(stage, message) for each step. Raises ModelRejected on failure."""
        self.check()
        job_file = job.workdir / "job.json"
        job_file.write_text(json.dumps(job.to_json()), encoding="utf-8")
        log = job.workdir / "toolkit.log"
        env = {**os.environ, **self.env}
        with log.open("w", encoding="utf-8") as stderr:
            process = subprocess.Popen(
                [str(self.python), str(WORKER), str(job_file)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
            assert process.stdout is not None
            events = [self._event(line, progress) for line in process.stdout]
            code = process.wait()
        done = [e for e in events if e.get("done")]
        if code != 0 or not done:
            errors = [str(e["error"]) for e in events if "error" in e]
            raise ModelRejected(self._failure(errors, log))
        return WorkerResult(
            Path(done[-1]["rknn"]), tuple(Path(p) for p in done[-1]["outputs"]), str(done[-1]["toolkit"])
        )

    @staticmethod
    def _event(line: str, progress: Progress) -> dict[str, Any]:
        try:
            event: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            logger.debug("toolkit: %s", line.rstrip())
            return {}
        if "stage" in event:
            progress(str(event["stage"]), str(event.get("message", "")))
        return event

    @staticmethod
    def _failure(errors: list[str], log: Path) -> str:
        plain = ANSI_COLOUR.sub("", log.read_text(encoding="utf-8", errors="replace"))
        tail = plain.splitlines()[-LOG_TAIL_LINES:]
        what = errors[-1].strip().splitlines()[-1] if errors and errors[-1].strip() else "the toolkit stopped"
        text = "\n".join(tail)
        fixes = [hint for needle, hint in HINTS if needle in text]
        fix = f"\nTo fix: {fixes[0]}" if fixes else ""
        head = f"rknn-toolkit2 could not convert the model: {what}{fix}"
        return f"{head}\nlast lines of the toolkit's log:\n{text}"
