"""Model files for the NPU tests: a float twin .tflite and its fake .rknn side by side."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def write_pair(
    folder: Path, tflite: Path, target: str = "rk3588", toolkit: str = "2.3.2", **attributes: Any
) -> Path:
    """Copy `tflite` to folder/model.tflite and write folder/model.rknn; returns the .rknn path.

    `attributes` go into the fake .rknn header (source, outputs, inputs: see rknnlite/container.py).
    Needs the fake rknnlite on sys.path (the `fake_npu` fixture).
    """
    from rknnlite.container import pack  # noqa: PLC0415 the fake, on sys.path only under `fake_npu`

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tflite, folder / "model.tflite")
    rknn = folder / "model.rknn"
    rknn.write_bytes(pack(tflite.read_bytes(), target=target, toolkit=toolkit, **attributes))
    return rknn


def write_manifest(folder: Path, layout: str = "nhwc", **rknn: Any) -> None:
    """The part of a registry manifest the rknn backend reads: input.layout and report.rknn."""
    data = {"input": {"layout": layout}, "report": {"rknn": rknn}}
    (folder / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
