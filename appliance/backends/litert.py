"""CPU backend: LiteRT (`ai_edge_litert`, XNNPACK), falling back to the frozen `tflite_runtime`.

With `delegate = "teflon"` each interpreter also gets Mesa's Teflon external delegate (`libteflon.so`,
for the mainline `rocket` NPU driver); when the library is missing or cannot take the model, the
interpreter runs on the CPU and the reason is logged once per process.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from appliance.backends.base import BackendOptions, Context
from appliance.errors import BackendUnavailable, InferenceFailed, ModelRejected
from appliance.platform import TEFLON, TEFLON_FIX, find_library
from appliance.tensorspec import TensorSpec

logger = logging.getLogger(__name__)

DELEGATE_LIBRARIES = {"teflon": (TEFLON, TEFLON_FIX)}
DELEGATE_SYMBOLS = ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate")
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning("%s", message)


def interpreter_class() -> tuple[type[Any], str]:
    """The Interpreter class and the name of the package it came from."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 optional vendor module (tflite_runtime is the fallback)

        return Interpreter, "ai_edge_litert"
    except ImportError as err:
        try:
            from tflite_runtime.interpreter import Interpreter as Legacy  # noqa: PLC0415 optional vendor module, the legacy fallback

            logger.warning("ai_edge_litert not importable (%s); using tflite_runtime", err)
            return Legacy, "tflite_runtime"
        except ImportError as legacy_err:
            raise BackendUnavailable(
                "no LiteRT runtime: pip install ai-edge-litert (or tflite-runtime with numpy < 2)"
            ) from legacy_err


def _spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(
        name=str(detail["name"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
    )


class LiteRTContext:
    """One interpreter. Not thread-safe: the pipeline gives each to a single worker thread."""

    def __init__(self, interpreter: Any, label: str) -> None:
        self._interpreter = interpreter
        self._label = label
        self._in = interpreter.get_input_details()
        self._out = interpreter.get_output_details()
        self._inputs = tuple(_spec(d) for d in self._in)
        self._outputs = tuple(_spec(d) for d in self._out)

    @property
    def label(self) -> str:
        return self._label

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        interp = self._interpreter
        try:
            for detail, array in zip(self._in, inputs, strict=True):
                interp.set_tensor(detail["index"], array)
            interp.invoke()
            return [interp.get_tensor(d["index"]) for d in self._out]
        except (ValueError, RuntimeError) as err:
            raise InferenceFailed(f"LiteRT invoke failed: {err}") from err

    def close(self) -> None:
        self._interpreter = None


def delegate_library_problem(path: Path) -> str | None:
    """Checked before LiteRT sees the library: its Delegate object breaks in __del__ on a bad one."""
    try:
        shared = ctypes.CDLL(str(path))
        for symbol in DELEGATE_SYMBOLS:
            getattr(shared, symbol)
    except (OSError, AttributeError) as err:
        return f"cannot load {path} as a TFLite external delegate: {err}"
    return None


def load_external_delegate(name: str, root: Path) -> tuple[Any | None, str]:
    """(delegate, "") when the named delegate's library loads, else (None, why and what to install)."""
    library, fix = DELEGATE_LIBRARIES[name]
    path = find_library(library, root)
    if path is None:
        return None, f"{library} not found: {fix}"
    problem = delegate_library_problem(path)
    if problem is not None:
        return None, problem
    try:
        from ai_edge_litert.interpreter import load_delegate  # noqa: PLC0415 optional vendor module (tflite_runtime is the fallback)

        return load_delegate(str(path)), ""
    except (ImportError, ValueError, RuntimeError, OSError) as err:
        return None, f"cannot load {path}: {err}"


def _interpreter(cls: type[Any], model: Path, threads: int, delegates: list[Any]) -> Any:
    extra = {"experimental_delegates": delegates} if delegates else {}
    try:
        interpreter = cls(model_path=str(model), num_threads=threads, **extra)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise ModelRejected(f"LiteRT cannot load the model: {err}") from err
    return interpreter


def read_specs(model: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Input and output tensors of a .tflite file (the rknn backend reads its float twin with this)."""
    cls, _ = interpreter_class()
    try:
        interpreter = cls(model_path=str(model))
    except (ValueError, RuntimeError) as err:
        raise ModelRejected(f"LiteRT cannot read {model.name}: {err}") from err
    inputs = tuple(_spec(d) for d in interpreter.get_input_details())
    return inputs, tuple(_spec(d) for d in interpreter.get_output_details())


class LiteRTBackend:
    name = "litert"
    model_suffix = ".tflite"

    def __init__(self, delegate: str = "none", root: Path = Path("/")) -> None:
        if delegate != "none" and delegate not in DELEGATE_LIBRARIES:
            raise BackendUnavailable(f"unknown LiteRT delegate {delegate!r}")
        self.delegate = delegate
        self._root = root

    def probe(self) -> str | None:
        try:
            interpreter_class()
        except BackendUnavailable as err:
            return str(err)
        return None

    def open(self, model: Path, options: BackendOptions) -> list[Context]:
        cls, package = interpreter_class()
        label = "litert" if package == "ai_edge_litert" else package
        return [self._context(cls, model, options.threads, label) for _ in range(options.contexts)]

    def _context(self, cls: type[Any], model: Path, threads: int, label: str) -> Context:
        if self.delegate != "none":
            delegate, why = load_external_delegate(self.delegate, self._root)
            if delegate is not None:
                try:
                    interpreter = _interpreter(cls, model, threads, [delegate])
                    return LiteRTContext(interpreter, f"{label}:{self.delegate}")
                except ModelRejected as err:
                    why = f"it cannot run {model.name}: {err}"
            _warn_once(f"LiteRT runs without the {self.delegate} delegate: {why}")
        return LiteRTContext(_interpreter(cls, model, threads, []), label)
