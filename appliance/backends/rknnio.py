"""What a .rknn model declares about its tensors, and turning RKNNLite's outputs into what it declares.

RKNNLite (rknn-toolkit-lite2) has no call that reports tensor attributes, and what `inference`
returns depends on the model: raw uint8/int8 for quantised outputs, NCHW for the 4-D outputs of
ONNX-sourced models. The attributes come from the version's manifest (`report.rknn`, written by
`appliance models convert` from the simulator's actual outputs) and, for what it does not say, from
the float twin. Anything that fits neither is an InferenceFailed naming the output, never a
silently wrong number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.errors import InferenceFailed, ModelRejected
from appliance.tensorspec import TensorSpec

MANIFEST = "manifest.json"  # the registry keeps it beside model.rknn
LAYOUTS = ("nhwc", "nchw")


@dataclass(frozen=True)
class OutputAttr:
    """One output as the runtime returns it: dtype, affine quantisation (scale 0 = float), layout."""

    dtype: str = "float32"
    scale: float = 0.0
    zero_point: int = 0
    layout: str = "nhwc"

    @classmethod
    def of(cls, data: dict[str, Any]) -> OutputAttr:
        layout = str(data.get("layout", "nhwc"))
        return cls(
            str(data.get("dtype", "float32")),
            float(data.get("scale", 0.0)),
            int(data.get("zero_point", 0)),
            layout if layout in LAYOUTS else "nhwc",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
            "layout": self.layout,
        }


@dataclass(frozen=True)
class FoldedInput:
    """The .rknn takes raw uint8 pixels: mean/std were given to rknn.config() at conversion, so the NPU
    normalises and the CPU does not. The manifest's input.mean/std keep the same numbers (they describe
    the float twin), the pipeline stops at uint8 pixels for the NPU route (ModelRuntime), and the CPU
    fallback of that route (the float twin) gets (pixel - mean) / std here."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _channels(self, tensor: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        if layout == "nchw" and tensor.ndim == 4:
            return mean[:, None, None], std[:, None, None]
        return mean, std

    def normalise(self, tensor: np.ndarray, layout: str) -> np.ndarray:
        """Raw pixels -> the float twin's input."""
        mean, std = self._channels(tensor, layout)
        values: np.ndarray = ((tensor.astype(np.float32) - mean) / std).astype(np.float32)
        return values

    def pixels(self, tensor: np.ndarray, layout: str) -> np.ndarray:
        """The float twin's input (a tensor sent through the API) -> the raw uint8 pixels the .rknn takes."""
        mean, std = self._channels(tensor, layout)
        pixels: np.ndarray = np.clip(np.rint(tensor.astype(np.float32) * std + mean), 0, 255).astype(np.uint8)
        return pixels


@dataclass(frozen=True)
class Declared:
    """The manifest's word on the model: input layout, output attributes, uint8 input handling."""

    layout: str | None = None
    outputs: tuple[OutputAttr, ...] = ()
    pass_through: bool = False  # inputs_pass_through=[1]: the tensor is already the model's native input
    folded: FoldedInput | None = None


def per_channel(values: Sequence[float], channels: int) -> tuple[float, ...]:
    """One value per channel: a single value applies to every channel (as InputSpec does)."""
    floats = tuple(float(v) for v in values)
    return floats * channels if len(floats) == 1 else floats[:channels]


def folded_of(report: Mapping[str, Any] | None) -> FoldedInput | None:
    """`report.rknn.folded_input` of a manifest: the .rknn normalises its own raw uint8 input."""
    rknn = (report or {}).get("rknn") or {}
    folded = rknn.get("folded_input") if isinstance(rknn, dict) else None
    if isinstance(folded, dict) and folded.get("mean") and folded.get("std"):
        return FoldedInput(tuple(map(float, folded["mean"])), tuple(map(float, folded["std"])))
    return None


def _check_fold(model: Path, fold: FoldedInput, settings: Mapping[str, Any]) -> None:
    """The float twin (CPU fallback) is normalised with the manifest's input.mean/std, the .rknn with
    what was folded in: they must be the same numbers, or the two routes disagree."""
    channels = len(fold.mean)
    mean = per_channel(settings.get("mean", fold.mean), channels)
    std = per_channel(settings.get("std", fold.std), channels)
    if not (np.allclose(mean, fold.mean) and np.allclose(std, fold.std)):
        raise ModelRejected(
            f"{model.name} has mean {list(fold.mean)} / std {list(fold.std)} folded in "
            f"(report.rknn.folded_input) but the manifest's input says mean {list(mean)} / std "
            f"{list(std)}: the NPU and the CPU fallback would not be normalised the same; convert the "
            "model again with `appliance models convert --uint8-input`"
        )


def declared(model: Path) -> Declared:
    """Read the manifest beside `model` (a registry version folder); nothing declared when absent."""
    try:
        data = json.loads((model.parent / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Declared()
    if not isinstance(data, dict):
        return Declared()
    settings = data.get("input") or {}
    layout = settings.get("layout")
    report = data.get("report") or {}
    rknn = report.get("rknn") or {}
    outputs = tuple(OutputAttr.of(o) for o in rknn.get("outputs", []) if isinstance(o, dict))
    fold = folded_of(report)
    if fold is not None:
        _check_fold(model, fold, settings)
    return Declared(
        layout if layout in LAYOUTS else None, outputs, bool(rknn.get("pass_through", False)), fold
    )


def nchw_of(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], shape[3], shape[1], shape[2])


class OutputConverter:
    """RKNNLite's outputs -> float32 arrays of the twin's shapes (dequantised, NHWC)."""

    def __init__(
        self, label: str, twin: Sequence[TensorSpec], declared_outputs: Sequence[OutputAttr]
    ) -> None:
        self._label = label
        self._twin = tuple(twin)
        self._attrs = tuple(declared_outputs)

    def _attr(self, k: int) -> OutputAttr | None:
        return self._attrs[k] if k < len(self._attrs) else None

    def _layout(self, k: int, array: np.ndarray, want: TensorSpec, attr: OutputAttr | None) -> np.ndarray:
        if array.ndim == 4 and len(want.shape) == 4:
            if attr is not None and attr.layout == "nchw" and array.shape == nchw_of(want.shape):
                return array.transpose(0, 2, 3, 1)
            if array.shape != want.shape and array.shape == nchw_of(want.shape):
                return array.transpose(0, 2, 3, 1)  # undeclared, but only NCHW fits
        if array.shape != want.shape:
            raise InferenceFailed(
                f"{self._label}: output {k} ({want.name}) came back with shape {array.shape}; the model "
                f"declares {want.shape}"
            )
        return array

    def _dequantise(self, k: int, array: np.ndarray, want: TensorSpec, attr: OutputAttr | None) -> np.ndarray:
        if array.dtype.kind not in "iu":
            return array if array.dtype == np.float32 else array.astype(np.float32)
        if attr is not None and attr.scale:
            scale, zero_point = attr.scale, attr.zero_point
        elif want.quantized and want.dtype == array.dtype.name:
            scale, zero_point = want.scale, want.zero_point
        else:
            raise InferenceFailed(
                f"{self._label}: output {k} ({want.name}) came back as raw {array.dtype} and neither the "
                "manifest (report.rknn.outputs) nor the float twin gives its scale and zero point; convert "
                "the model again with `appliance models convert`"
            )
        return (array.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)

    def __call__(self, outputs: Sequence[Any]) -> list[np.ndarray]:
        if len(outputs) != len(self._twin):
            raise InferenceFailed(f"{self._label}: {len(outputs)} outputs, the model has {len(self._twin)}")
        converted = []
        for k, (value, want) in enumerate(zip(outputs, self._twin, strict=True)):
            array = np.asarray(value)
            attr = self._attr(k)
            converted.append(self._dequantise(k, self._layout(k, array, want, attr), want, attr))
        return converted
