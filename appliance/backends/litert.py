"""CPU backend: LiteRT (`ai_edge_litert`, XNNPACK), falling back to the frozen `tflite_runtime`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from appliance.backends.base import BackendOptions, Context, TensorSpec
from appliance.errors import BackendUnavailable, InferenceFailed, ModelRejected

logger = logging.getLogger(__name__)


def interpreter_class() -> tuple[type[Any], str]:
    """The Interpreter class and the name of the package it came from."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError as err:
        try:
            from tflite_runtime.interpreter import Interpreter as Legacy

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


class LiteRTBackend:
    name = "litert"
    model_suffix = ".tflite"

    def probe(self) -> str | None:
        try:
            interpreter_class()
        except BackendUnavailable as err:
            return str(err)
        return None

    def open(self, model: Path, options: BackendOptions) -> list[Context]:
        cls, package = interpreter_class()
        contexts: list[Context] = []
        for _ in range(options.contexts):
            try:
                interpreter = cls(model_path=str(model), num_threads=options.threads)
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as err:
                raise ModelRejected(f"LiteRT cannot load the model: {err}") from err
            contexts.append(LiteRTContext(interpreter, "litert" if package == "ai_edge_litert" else package))
        return contexts
