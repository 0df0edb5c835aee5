"""Fake `rknn.api.RKNN` (rknn-toolkit2): config, load_tflite/load_onnx, build, export_rknn, and the
simulator (`init_runtime()` without a target, then `inference`). Return codes as documented: 0 or -1.

The fake cannot read ONNX: `load_onnx(model=X.onnx)` reads the float twin `X.tflite` beside it, and
like the real simulator returns 4-D outputs of ONNX models as NCHW. Quantised .tflite sources give
raw integer outputs (the real 2.5.0 simulator returned uint8 for stripes_uint8). An int8 build
behaves like post-training quantisation: `build` runs the float model on every calibration input
and keeps each tensor's range; the simulator clips the input and every output to those ranges and
rounds them to 256 levels. Calibrated on images unlike the real ones (noise), real inputs fall
outside the ranges and the outputs are wrong, as on the real toolkit. FAKE_RKNN_BROKEN=1 reverses
outputs (a conversion that fails verification); FAKE_RKNN_VERSION sets the toolkit version written.
`config(mean_values=, std_values=)` is applied to every input (calibration files and simulator
inputs, as the real toolkit does) and written into the .rknn's input settings, which the fake
rknnlite then applies on the "board".
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


def _levels(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip to [low, high] and round to 256 levels: what an int8 tensor calibrated to that range holds."""
    if high == low:
        return np.full_like(array, low, dtype=np.float32)
    step = (high - low) / LEVELS
    clipped = np.clip(array, low, high)
    return (np.round((clipped - low) / step) * step + low).astype(np.float32)


class RKNN:
    def __init__(self, verbose: bool = False, verbose_file: str | None = None) -> None:
        self._target: str | None = None
        self._tflite: bytes | None = None
        self._built = False
        self._quantized = False
        self._onnx = False
        self._interpreter: Any = None
        self._ranges: list[tuple[float, float]] = []  # input, then every output: calibrated (low, high)
        self._mean: list[list[float]] | None = None  # config(mean_values=, std_values=): per input
        self._std: list[list[float]] | None = None

    def config(
        self,
        mean_values: list[list[float]] | None = None,
        std_values: list[list[float]] | None = None,
        target_platform: str | None = None,
        **options: Any,
    ) -> None:
        self._target = target_platform
        self._mean, self._std = mean_values, std_values
        sys.stderr.write(f"I config: target_platform={target_platform} {options}\n")

    def _normalise(self, value: np.ndarray) -> np.ndarray:
        """mean/std from config() apply to every input (calibration, simulator), NHWC channel last."""
        if self._mean is None or self._std is None:
            return value
        mean, std = np.asarray(self._mean[0], np.float32), np.asarray(self._std[0], np.float32)
        return ((value.astype(np.float32) - mean) / std).astype(np.float32)

    def load_tflite(self, model: str) -> int:
        try:
            self._tflite = Path(model).read_bytes()
        except OSError as err:
            return _error(f"load_tflite: {err}")
        return 0

    def load_onnx(self, model: str, **options: Any) -> int:
        self._onnx = True
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
        """Like the real toolkit: every file is read, and 4-D inputs must be NCHW; keeps the ranges."""
        interp = Interpreter(model_content=self._tflite, num_threads=1)
        interp.allocate_tensors()
        shape = tuple(interp.get_input_details()[0]["shape"])
        seen: list[list[np.ndarray]] = []
        for line in dataset.read_text().split():
            array = np.load(line)
            if array.ndim == 4 and array.shape != (shape[0], shape[3], shape[1], shape[2]):
                return f"The input('{line}') shape {array.shape} is wrong, expect 'nchw'"
            value = self._normalise(array.transpose(0, 2, 3, 1) if array.ndim == 4 else array)
            seen.append([value, *self._float_run(interp, value)])
        self._ranges = [
            (min(float(s[k].min()) for s in seen), max(float(s[k].max()) for s in seen))
            for k in range(len(seen[0]))
        ]
        return None

    @staticmethod
    def _float_run(interp: Any, value: np.ndarray) -> list[np.ndarray]:
        detail = interp.get_input_details()[0]
        interp.set_tensor(detail["index"], value.astype(detail["dtype"]))
        interp.invoke()
        return [interp.get_tensor(d["index"]).astype(np.float32) for d in interp.get_output_details()]

    def export_rknn(self, export_path: str) -> int:
        if not self._built or self._tflite is None or self._target is None:
            return _error("export_rknn: build first")
        version = os.environ.get("FAKE_RKNN_VERSION", "2.3.2")
        data = pack(
            self._tflite,
            target=self._target,
            toolkit=version,
            quantized=self._quantized,
            source="onnx" if self._onnx else "tflite",
            outputs=self._output_attrs(),
            inputs=[{"mean": self._mean[0], "std": self._std[0]}] if self._mean and self._std else [],
        )
        Path(export_path).write_bytes(data)
        return 0

    def _output_attrs(self) -> list[dict[str, Any]]:
        """Quantised .tflite outputs stay raw integers on the board too."""
        attrs = []
        for detail in Interpreter(model_content=self._tflite).get_output_details():
            dtype = np.dtype(detail["dtype"])
            scale, zero_point = detail["quantization"]
            if dtype.kind in "iu" and scale:
                attrs.append({"dtype": dtype.name, "scale": float(scale), "zero_point": int(zero_point)})
            else:
                attrs.append({"dtype": "float32"})
        return attrs

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
        calibrated = self._quantized and bool(self._ranges)
        for detail, array in zip(interp.get_input_details(), inputs, strict=True):
            value = array.transpose(0, 2, 3, 1) if data_format == "nchw" and array.ndim == 4 else array
            value = self._normalise(value)
            if calibrated:
                value = _levels(value.astype(np.float32), *self._ranges[0])
            interp.set_tensor(detail["index"], value.astype(detail["dtype"]))
        interp.invoke()
        details = interp.get_output_details()
        outputs = [interp.get_tensor(d["index"]) for d in details]
        if calibrated:
            outputs = [
                _levels(o.astype(np.float32), *r) for o, r in zip(outputs, self._ranges[1:], strict=True)
            ]
        elif self._quantized:
            outputs = [
                o if o.dtype.kind in "iu" else _levels(o, float(o.min()), float(o.max())) for o in outputs
            ]
        if os.environ.get("FAKE_RKNN_BROKEN") == "1":
            outputs = [np.ascontiguousarray(o[..., ::-1]) for o in outputs]
        if self._onnx:
            outputs = [np.ascontiguousarray(o.transpose(0, 3, 1, 2)) if o.ndim == 4 else o for o in outputs]
        return outputs

    def release(self) -> None:
        self._interpreter = None
