"""Runs inside the rknn-toolkit2 venv (`make rknn-tools`), never in the appliance's venv.

    .venv-rknn/bin/python worker.py JOB.json

It imports only the standard library, numpy and `rknn.api` (the toolkit pins numpy <= 1.26, so it
cannot share the appliance's venv). Protocol: one JSON object per stdout line, `{"stage", "message"}`
for progress, then `{"done": true, "rknn", "outputs", "toolkit"}`; a failure prints `{"error"}` and
exits 1. The toolkit's own log goes to stderr, which the caller keeps in toolkit.log.

The job (written by appliance.convert.toolkit): source (.onnx or .tflite), target, quantize,
dataset (text file of calibration .npy paths, already in the source model's layout), samples
(verification inputs, .npy, NHWC as the board's runtime gets them), workdir, and mean_values /
std_values (one per channel, or null): given, they go to rknn.config() and every input (calibration,
samples, the board's frames) is raw uint8 pixels that the model normalises itself.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

_PROTOCOL: list[Any] = [sys.stdout]


def keep_stdout_for_the_protocol() -> None:
    """The toolkit prints to stdout (from Python and from native code): send fd 1 to stderr."""
    _PROTOCOL[0] = os.fdopen(os.dup(1), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(2, 1)


def emit(**event: Any) -> None:
    _PROTOCOL[0].write(json.dumps(event) + "\n")
    _PROTOCOL[0].flush()


def check(ret: Any, what: str) -> None:
    if ret != 0:
        raise RuntimeError(f"{what} returned {ret}; the toolkit log says why")


def toolkit_version() -> str:
    try:
        return importlib.metadata.version("rknn-toolkit2")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build(rknn: Any, job: dict[str, Any]) -> Path:
    source = Path(job["source"])
    emit(stage="config", message=f"target {job['target']}, {'int8' if job['quantize'] else 'fp16'}")
    if job.get("mean_values"):
        # --uint8-input: the model normalises its raw uint8 pixels itself, on the NPU
        rknn.config(
            target_platform=job["target"],
            mean_values=[job["mean_values"]],
            std_values=[job["std_values"]],
        )
    else:
        rknn.config(target_platform=job["target"])  # no mean/std: inputs arrive normalised
    emit(stage="load", message=source.name)
    if source.suffix == ".onnx":
        check(rknn.load_onnx(model=str(source)), "load_onnx")
    else:
        check(rknn.load_tflite(model=str(source)), "load_tflite")
    emit(stage="build", message="quantising with the calibration set" if job["quantize"] else "fp16")
    check(rknn.build(do_quantization=bool(job["quantize"]), dataset=job.get("dataset")), "build")
    target = Path(job["workdir"]) / "model.rknn"
    emit(stage="export", message=target.name)
    check(rknn.export_rknn(str(target)), "export_rknn")
    return target


def simulate(rknn: Any, job: dict[str, Any]) -> list[str]:
    emit(stage="simulate", message=f"{len(job['samples'])} sample(s) on the simulator")
    check(rknn.init_runtime(), "init_runtime (simulator)")
    written: list[str] = []
    for index, sample in enumerate(job["samples"]):
        outputs = rknn.inference(inputs=[np.load(sample)], data_format="nhwc")
        if outputs is None:
            raise RuntimeError(f"simulator inference returned None for sample {index}")
        path = Path(job["workdir"]) / f"sim_{index:04d}.npz"
        np.savez(path, *[np.asarray(o) for o in outputs])  # raw, as the runtime returns them
        written.append(str(path))
    return written


def main(argv: list[str]) -> int:
    keep_stdout_for_the_protocol()
    job = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    rknn = importlib.import_module("rknn.api").RKNN(verbose=False)
    try:
        target = build(rknn, job)
        outputs = simulate(rknn, job)
    except (RuntimeError, OSError, ValueError) as err:
        emit(error=str(err))
        return 1
    finally:
        rknn.release()
    emit(done=True, rknn=str(target), outputs=outputs, toolkit=toolkit_version())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
