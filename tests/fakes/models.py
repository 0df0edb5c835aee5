"""Model files for the NPU tests: a float twin .tflite and its fake .rknn side by side."""

from __future__ import annotations

import shutil
from pathlib import Path


def write_pair(folder: Path, tflite: Path, target: str = "rk3588", toolkit: str = "2.3.2") -> Path:
    """Copy `tflite` to folder/model.tflite and write folder/model.rknn; returns the .rknn path.

    Needs the fake rknnlite on sys.path (the `fake_npu` fixture).
    """
    from rknnlite.container import pack

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tflite, folder / "model.tflite")
    rknn = folder / "model.rknn"
    rknn.write_bytes(pack(tflite.read_bytes(), target=target, toolkit=toolkit))
    return rknn
