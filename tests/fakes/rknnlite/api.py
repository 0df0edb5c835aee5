"""Fake `rknnlite.api.RKNNLite`, written from rknn-toolkit-lite2 2.3.2's rknnlite/api/rknn_lite.py.

Same methods, defaults and return values: `load_rknn` only reads the file (a damaged model fails in
`init_runtime`, like librknnrt's rknn_init); `init_runtime` returns -1 with librknnrt's log lines;
`inference` catches everything and returns None (it never raises); `get_sdk_version` returns None on
failure. The fake `.rknn` container holds the float twin's .tflite bytes (`container.py`), which the
fake runs with LiteRT, so outputs are real numbers; the container's attributes decide the output
dtype (raw integers or float) and layout (NCHW for ONNX-sourced 4-D outputs). Log lines go to
stderr and `NPU.log`. tests/fakes/README.md maps every behaviour to its source.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from rknnlite import device
from rknnlite.container import FORMAT_VERSION, unpack

VALID_MASKS = (0, 1, 2, 4, 3, 7, 0xFFFF)
SAME_SOC = {"rk3588s": "rk3588"}
LIBRKNNRT_MISSING = (
    "Please download the librknnrt.so from https://github.com/airockchip/rknn-toolkit2/tree/master/rknpu2/"
    "runtime/Linux/librknn_api/aarch64 and move it to directory /usr/lib/"
)

INIT_FAILED = "Exception: RKNN init failed. error code: "


class _Failed(Exception):
    """Inside the fake only: a step failed; the public method logs and returns -1 / None."""


def _log(message: str) -> None:
    device.NPU.log.append(message)
    sys.stderr.write(f"E {message}\n")


def _release_of(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2])


def _quantize(array: np.ndarray, dtype: np.dtype[Any], scale: float, zero_point: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(array / scale + zero_point), info.min, info.max).astype(dtype)


def _to_model(array: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype != array.dtype and scale and dtype.kind in "iu" and array.dtype.kind == "f":
        return _quantize(array, dtype, scale, zero_point)
    return array.astype(dtype, copy=False)


def _to_float(array: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if scale and array.dtype.kind in "iu":
        return ((array.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return array.astype(np.float32)


class RKNNLite:
    NPU_CORE_AUTO = 0
    NPU_CORE_0 = 1
    NPU_CORE_1 = 2
    NPU_CORE_2 = 4
    NPU_CORE_0_1 = 3
    NPU_CORE_0_1_2 = 7
    NPU_CORE_ALL = 0xFFFF

    def __init__(self, verbose: bool = False, verbose_file: str | None = None) -> None:
        self.verbose = verbose
        self.rknn_data: bytes | None = None
        self._header: dict[str, Any] = {}
        self._interpreter: Any = None
        self._mask = -1
        self._busy = threading.Lock()

    # rknn_lite.py:57-79: only reads the bytes
    def load_rknn(self, path: str) -> int:
        if not path or not os.path.exists(path):
            _log(f"Invalid RKNN model path: {path or 'None'}")
            return -1
        try:
            with open(path, "rb") as file:
                self.rknn_data = file.read()
        except OSError:
            _log(f"Catch exception when loading RKNN model [{path}]!")
            return -1
        return 0

    def _build_graph(self, core_mask: int) -> None:
        """librknnrt's rknn_init: driver, file format, format version, target (rknn_lite.py:155-168)."""
        npu = device.NPU
        if npu.fail_init:
            raise _Failed(
                "failed to open rknpu module, need to insmod rknpu dirver!\nfailed to open rknn device!",
                "RKNN_ERR_FAIL",
            )
        assert self.rknn_data is not None
        try:
            header, tflite = unpack(self.rknn_data)
        except ValueError as err:
            raise _Failed(f"{err}\nrknn_init, load model failed!", "RKNN_ERR_MODEL_INVALID") from err
        supported = FORMAT_VERSION if _release_of(npu.runtime_version) >= (1, 6) else 5
        if header["format_version"] > supported:
            version = header["format_version"]
            raise _Failed(
                f"{version}, {supported}\nInvalid RKNN model version {version}\n"
                "rknn_init, load model failed!",
                "RKNN_ERR_FAIL",
            )
        if SAME_SOC.get(header["target"], header["target"]) != SAME_SOC.get(npu.soc, npu.soc):
            raise _Failed(
                f"The model target platform {header['target']} does not match the device {npu.soc}\n"
                "rknn_init, load model failed!",
                "RKNN_ERR_TARGET_PLATFORM_UNMATCH",
            )
        self._header = header
        self._interpreter = Interpreter(model_content=tflite, num_threads=1)
        self._interpreter.allocate_tensors()

    def init_runtime(
        self,
        target: str | None = None,
        device_id: str | None = None,
        async_mode: bool = False,
        core_mask: int = NPU_CORE_AUTO,
    ) -> int:
        if self.rknn_data is None:
            _log("Model is not loaded yet, this interface should be called after load_rknn!")
            return -1
        self._release_runtime()  # rknn_lite.py:143-146
        if not device.NPU.librknnrt:
            _log(f"Catch exception when init runtime!\n{LIBRKNNRT_MISSING}")
            return -1
        try:
            self._build_graph(core_mask)
        except _Failed as err:
            lines, code = err.args
            _log(f"{lines}\nCatch exception when init runtime!\n{INIT_FAILED}{code}")
            self._interpreter = None
            return -1
        npu = device.NPU
        if core_mask not in VALID_MASKS or (core_mask not in (0, 0xFFFF) and core_mask >= 1 << npu.cores):
            _log("Catch exception when set npu core mode.")  # rknn_lite.py:171-175
            self._interpreter = None
            return -1
        self._mask = core_mask
        with npu.lock:
            npu.inits += 1
        return 0

    def get_sdk_version(self) -> str | None:
        if self._interpreter is None:
            _log("Runtime environment is not inited, please call init_runtime to init it first!")
            return None
        npu = device.NPU
        if npu.sdk_broken:
            _log("Catch exception when get sdk version")
            return None
        version = npu.runtime_version
        return f"API: {version} (fake@2025-04-09)\nDRV: rknn_server: {version}, rknnrt: {version}"

    def _cores(self) -> set[int]:
        if self._mask in (0, 0xFFFF):
            return {0}  # NPU_CORE_AUTO: the driver picks; the fake always says core 0
        return {c for c in range(device.NPU.cores) if self._mask & (1 << c)}

    def _run_step(self) -> None:
        """rknn_run: count, then the injected failure (rknn_lite.py:215-221)."""
        npu = device.NPU
        cores = self._cores()
        with npu.lock:
            count = npu.inferences
            npu.inferences += 1
            npu.by_core[f"mask{self._mask}"] += 1
            core_count = max(npu.per_core[c] for c in cores)
            for core in cores:
                npu.per_core[core] += 1
        if cores & npu.hang_cores and core_count >= npu.hang_after:
            with npu.lock:
                npu.hanging += 1
            try:
                npu.unhang.wait(npu.hang_s)
            finally:
                with npu.lock:
                    npu.hanging -= 1
            raise _Failed(device.SUBMIT_FAILED)
        if (npu.none_after is not None and count >= npu.none_after) or cores & npu.failing_cores:
            if npu.slow_fail_s:
                time.sleep(npu.slow_fail_s)
            raise _Failed(device.SUBMIT_FAILED)
        if npu.delay_s:
            time.sleep(npu.delay_s)

    def inference(
        self,
        inputs: Sequence[np.ndarray],
        data_type: str | None = None,
        data_format: object = None,
        inputs_pass_through: object = None,
        get_frame_id: bool = False,
    ) -> list[np.ndarray] | None:
        if self._interpreter is None:
            _log("Runtime environment is not inited, please call init_runtime to init it first!")
            return None
        if not self._busy.acquire(blocking=False):
            # airockchip/rknn-toolkit2#531/#533: one context from two threads -> failed to submit
            with device.NPU.lock:
                device.NPU.shared_use += 1
            _log(f"{device.SUBMIT_FAILED}\nCatch exception when running RKNN model.")
            return None
        try:
            npu = device.NPU
            npu.last_inputs, npu.last_format, npu.last_pass_through = (
                list(inputs),
                data_format,
                inputs_pass_through,
            )
            try:
                self._set_inputs(list(inputs), data_format, inputs_pass_through)
            except _Failed as err:
                _log(f"{err.args[0]}\nCatch exception when setting inputs.")
                return None
            try:
                self._run_step()
            except _Failed as err:
                _log(f"{err.args[0]}\nCatch exception when running RKNN model.")
                return None
            self._interpreter.invoke()
            return self._outputs()
        except Exception as err:  # rknn_lite.py wraps every step in a bare except: never raises
            _log(f"Catch exception when running RKNN model.\n{type(err).__name__}: {err}")
            return None
        finally:
            self._busy.release()

    def _set_inputs(self, inputs: list[np.ndarray], data_format: object, pass_through: object) -> None:
        interp = self._interpreter
        details = interp.get_input_details()
        if len(inputs) != len(details):
            raise _Failed("Inputs are invalid.")
        formats = data_format if isinstance(data_format, list) else [data_format] * len(inputs)
        passes = pass_through if isinstance(pass_through, list) else [0] * len(inputs)
        if len(passes) != len(inputs):
            raise _Failed("The lengths of inputs_pass_through and inputs are not equal.")
        settings = self._header.get("inputs") or [{} for _ in details]
        for k, (detail, array, layout) in enumerate(zip(details, inputs, formats, strict=True)):
            value = np.asarray(array)
            if (
                value.ndim == 4 and layout == "nchw"
            ):  # "the data format and data buffer will be changed to NHWC"
                value = value.transpose(0, 2, 3, 1)
            if tuple(value.shape) != tuple(detail["shape"]):
                raise _Failed(f"Size of inputs[{k}] is invalid!")
            if passes[k]:
                if value.dtype != np.dtype(detail["dtype"]):
                    raise _Failed(f"Size of inputs[{k}] is invalid!")
            else:
                value = self._normalise(value, settings[k] if k < len(settings) else {})
                value = _to_model(value, detail)
            interp.set_tensor(detail["index"], value)

    @staticmethod
    def _normalise(value: np.ndarray, setting: dict[str, Any]) -> np.ndarray:
        """mean/std given to rknn.config() at conversion are applied by the runtime to every input."""
        if "mean" not in setting:
            return value
        mean = np.asarray(setting["mean"], np.float32)
        std = np.asarray(setting["std"], np.float32)
        return ((value.astype(np.float32) - mean) / std).astype(np.float32)

    def _outputs(self) -> list[np.ndarray]:
        interp = self._interpreter
        attrs = self._header.get("outputs") or []
        onnx = self._header.get("source") == "onnx"
        outputs = []
        for k, detail in enumerate(interp.get_output_details()):
            raw = interp.get_tensor(detail["index"])
            attr = attrs[k] if k < len(attrs) else {"dtype": "float32"}
            value = _to_float(raw, detail)
            if (
                attr["dtype"] != "float32"
            ):  # the model's output attribute: raw integers, as the NPU wrote them
                value = _quantize(value, np.dtype(attr["dtype"]), attr["scale"], attr["zero_point"])
            if onnx and value.ndim == 4:
                value = np.ascontiguousarray(value.transpose(0, 3, 1, 2))
            outputs.append(value)
        return outputs

    def _release_runtime(self) -> None:
        if self._interpreter is not None:
            with device.NPU.lock:
                device.NPU.released += 1
        self._interpreter = None

    def release(self) -> None:
        self._release_runtime()
