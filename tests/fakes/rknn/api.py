"""Fake `rknn.api.RKNN` (rknn-toolkit2): config, load_tflite/load_onnx, build, export_rknn, and the
simulator (`init_runtime()` without a target, then `inference`). Return codes as documented: 0 or -1.

The fake cannot read ONNX: `load_onnx(model=X.onnx)` reads the float twin `X.tflite` beside it.
The exported file is the fake container of rknnlite/container.py. An int8 build rounds simulator
outputs to 256 levels per output (quantisation-like error); FAKE_RKNN_BROKEN=1 reverses them (a
conversion that fails verification). Environment: FAKE_RKNN_VERSION sets the toolkit version written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from rknnlite.container import pack

LEVELS = 255


def _error(message: str) -> int:
    sys.stderr.write(f"E {message}\n")
    return -1


def _levels(array: np.ndarray) -> np.ndarray:
    low, high = float(array.min()), float(array.max())
    if high == low:
        return array
    step = (high - low) / LEVELS
    return (np.round((array - low) / step) * step + low).astype(np.float32)


class RKNN:
    def __init__(self, verbose: bool = False, verbose_file: str | None = None) -> None:
        self._target: str | None = None
        self._tflite: bytes | None = None
        self._built = False
        self._quantized = False
        self._interpreter: Any = None

    def config(self, target_platform: str | None = None, **options: Any) -> None:
        self._target = target_platform
        sys.stderr.write(f"I config: target_platform={target_platform} {options}\n")

    def load_tflite(self, model: str) -> int:
        try:
            self._tflite = Path(model).read_bytes()
        except OSError as err:
            return _error(f"load_tflite: {err}")
        return 0

    def load_onnx(self, model: str, **options: Any) -> int:
        return self.load_tflite(str(Path(model).with_suffix(".tflite")))

    def build(self, do_quantization: bool = False, dataset: str | None = None, **options: Any) -> int:
        if self._tflite is None or self._target is None:
            return _error("build: call config(target_platform=...) and load_* first")
        if do_quantization:
            if dataset is None:
                return _error("build: do_quantization=True needs a dataset")
            problem = self._calibration_problem(Path(dataset))
            if problem is not None:
                return _error(f"build: {problem}")
        self._built, self._quantized = True, do_quantization
        return 0

    def _calibration_problem(self, dataset: Path) -> str | None:
        """Like the real toolkit: every file is read, and 4-D inputs must be NCHW."""
        shape = tuple(Interpreter(model_content=self._tflite).get_input_details()[0]["shape"])
        for line in dataset.read_text().split():
            array = np.load(line)
            if array.ndim == 4 and array.shape != (shape[0], shape[3], shape[1], shape[2]):
                return f"The input('{line}') shape {array.shape} is wrong, expect 'nchw'"
        return None

    def export_rknn(self, export_path: str) -> int:
        if not self._built or self._tflite is None or self._target is None:
            return _error("export_rknn: build first")
        version = os.environ.get("FAKE_RKNN_VERSION", "2.3.2")
        data = pack(self._tflite, target=self._target, toolkit=version, quantized=self._quantized)
        Path(export_path).write_bytes(data)
        return 0

    def init_runtime(self, target: str | None = None, **options: Any) -> int:
        if target is not None:
            return _error("init_runtime: the fake has no board to connect to")
        if not self._built:
            return _error("init_runtime: build first")
        self._interpreter = Interpreter(model_content=self._tflite, num_threads=1)
        self._interpreter.allocate_tensors()
        return 0

    def inference(
        self, inputs: list[np.ndarray], data_format: Any = None, **options: Any
    ) -> list[np.ndarray] | None:
        if self._interpreter is None:
            _error("inference: init_runtime first")
            return None
        interp = self._interpreter
        for detail, array in zip(interp.get_input_details(), inputs, strict=True):
            value = array.transpose(0, 2, 3, 1) if data_format == "nchw" and array.ndim == 4 else array
            interp.set_tensor(detail["index"], value.astype(detail["dtype"]))
        interp.invoke()
        outputs = [interp.get_tensor(d["index"]).astype(np.float32) for d in interp.get_output_details()]
        if self._quantized:
            outputs = [_levels(o) for o in outputs]
        if os.environ.get("FAKE_RKNN_BROKEN") == "1":
            outputs = [np.ascontiguousarray(o[..., ::-1]) for o in outputs]
        return outputs

    def release(self) -> None:
        self._interpreter = None
