"""Fake `rknnlite.api.RKNNLite`: the documented rknn-toolkit-lite2 API, its -1/None error returns,
failure modes driven by `rknnlite.device.NPU`, and the one-thread-per-context rule.

The fake `.rknn` container holds the float twin's .tflite bytes (`container.py`), which the fake
runs with LiteRT, so outputs are real numbers. Like the vendor library, errors are only printed
(to stderr, and kept in `NPU.log`): the caller sees -1 or None.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from rknnlite import device
from rknnlite.container import unpack

VALID_MASKS = (0, 1, 2, 4, 3, 7, 0xFFFF)
SAME_SOC = {"rk3588s": "rk3588"}


def _error(message: str) -> None:
    device.NPU.log.append(message)
    sys.stderr.write(f"E RKNN: {message}\n")


def _release_of(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2])


def _to_model(array: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype != array.dtype and scale and dtype.kind in "iu" and array.dtype.kind == "f":
        info = np.iinfo(dtype)
        return np.clip(np.round(array / scale + zero_point), info.min, info.max).astype(dtype)
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
        self._header: dict[str, Any] | None = None
        self._tflite: bytes | None = None
        self._interpreter: Any = None
        self._mask = -1
        self._busy = threading.Lock()

    def load_rknn(self, path: str) -> int:
        if device.NPU.fail_load:
            _error(f"failed to load {path}")
            return -1
        try:
            self._header, self._tflite = unpack(Path(path).read_bytes())
        except (OSError, ValueError) as err:
            _error(f"load_rknn: {path}: {err}")
            return -1
        return 0

    def _runtime_problem(self, core_mask: int) -> str | None:
        npu = device.NPU
        assert self._header is not None
        if npu.fail_init:
            return "failed to open rknpu module, need to insmod rknpu driver!"
        if _release_of(self._header["toolkit"]) > _release_of(npu.runtime_version):
            made = self._header["toolkit"]
            return f"Invalid RKNN model version (model {made}, librknnrt {npu.runtime_version})"
        if SAME_SOC.get(self._header["target"], self._header["target"]) != SAME_SOC.get(npu.soc, npu.soc):
            return f"the model is for {self._header['target']}, this is {npu.soc}"
        if core_mask not in VALID_MASKS or (core_mask not in (0, 0xFFFF) and core_mask >= 1 << npu.cores):
            return f"core_mask {core_mask} is not supported on {npu.soc}"
        return None

    def init_runtime(
        self,
        target: str | None = None,
        device_id: str | None = None,
        async_mode: bool = False,
        core_mask: int = NPU_CORE_AUTO,
    ) -> int:
        if self._tflite is None:
            _error("init_runtime: no model loaded, call load_rknn first")
            return -1
        problem = self._runtime_problem(core_mask)
        if problem is not None:
            _error(problem)
            return -1
        self._interpreter = Interpreter(model_content=self._tflite, num_threads=1)
        self._interpreter.allocate_tensors()
        self._mask = core_mask
        with device.NPU.lock:
            device.NPU.inits += 1
        return 0

    def get_sdk_version(self) -> str:
        if self._interpreter is None:
            _error("get_sdk_version: runtime not initialised")
            return ""
        npu = device.NPU
        return f"API: {npu.runtime_version} (fake)\nDRV: rknpu {npu.driver_version}"

    def _injected_failure(self) -> str | None:
        """Counts the inference; returns 'none' or 'raise' when the device is set to fail now."""
        npu = device.NPU
        with npu.lock:
            count = npu.inferences
            npu.inferences += 1
            npu.by_core[f"mask{self._mask}"] += 1
        if npu.raise_after is not None and count >= npu.raise_after:
            return "raise"
        cores = {c for c in range(npu.cores) if self._mask & (1 << c)}
        if (npu.none_after is not None and count >= npu.none_after) or cores & npu.failing_cores:
            return "none"
        return None

    def inference(
        self,
        inputs: Sequence[np.ndarray],
        data_type: str | None = None,
        data_format: object = None,
        inputs_pass_through: object = None,
        get_frame_id: bool = False,
    ) -> list[np.ndarray] | None:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                "fake rknnlite: this context is running inference in another thread; "
                "use one context per thread (airockchip/rknn-toolkit2#533)"
            )
        try:
            return self._inference(list(inputs), data_format)
        finally:
            self._busy.release()

    def _inference(self, inputs: list[np.ndarray], data_format: object) -> list[np.ndarray] | None:
        if self._interpreter is None:
            _error("inference: runtime not initialised")
            return None
        device.NPU.last_inputs, device.NPU.last_format = inputs, data_format
        failure = self._injected_failure()
        if failure == "raise":
            raise RuntimeError("rknn_run: failed to submit!, op id: 1, op name: Conv")
        if failure == "none":
            _error("rknn_run error -1: failed to submit (device timeout)")
            return None
        if device.NPU.delay_s:
            time.sleep(device.NPU.delay_s)
        return self._run_tflite(inputs, data_format)

    def _run_tflite(self, inputs: list[np.ndarray], data_format: object) -> list[np.ndarray] | None:
        interp = self._interpreter
        details = interp.get_input_details()
        if len(inputs) != len(details):
            _error(f"inference: {len(inputs)} inputs given, the model has {len(details)}")
            return None
        formats = data_format if isinstance(data_format, list) else [data_format] * len(inputs)
        for detail, array, layout in zip(details, inputs, formats, strict=True):
            value = np.asarray(array)
            if value.ndim == 4 and layout == "nchw":
                value = value.transpose(0, 2, 3, 1)
            if tuple(value.shape) != tuple(detail["shape"]):
                _error(f"inference: input shape {value.shape} != model shape {tuple(detail['shape'])}")
                return None
            interp.set_tensor(detail["index"], _to_model(value, detail))
        interp.invoke()
        return [_to_float(interp.get_tensor(d["index"]), d) for d in interp.get_output_details()]

    def release(self) -> None:
        if self._interpreter is not None:
            with device.NPU.lock:
                device.NPU.released += 1
        self._interpreter = None
        self._tflite = None
