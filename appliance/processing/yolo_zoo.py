"""rknn_model_zoo's YOLOv8 / YOLO11 export: per-branch DFL boxes and class scores instead of [1,84,8400].

The zoo's export (airockchip/rknn_model_zoo examples/yolov8, also yolo11) cuts the head before the
box decoding, because the NPU runs it badly: for every stride (8, 16, 32) it outputs
`box` (4 x reg_max DFL bins, reg_max 16), `cls` (C class scores, already sigmoid) and, in the
9-output variant, `score_sum` (1 channel, a quick filter the decoder does not need). Outputs may be
NCHW (as the .rknn returns them) or NHWC (a .tflite twin); which one is read from where the grid
fits the input size. Decoding follows the zoo's python/yolov8.py `box_process`/`dfl`: the box edges
are the expected bin of a softmax over each side's bins, in stride units from the cell centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from appliance.errors import ModelRejected
from appliance.processing.quant import dequantize
from appliance.tensorspec import TensorSpec

STRIDES = (8, 16, 32)
SIDES = 4


@dataclass(frozen=True)
class Branch:
    stride: int
    box: int  # output index of the DFL box tensor
    cls: int  # output index of the class scores
    box_nchw: bool
    cls_nchw: bool
    grid: tuple[int, int]  # rows, cols


def _grid_of(shape: tuple[int, ...], input_hw: tuple[int, int]) -> tuple[int, tuple[int, int], bool] | None:
    """(stride, grid, nchw) when a 4-D shape is a stride-8/16/32 grid of the input, else None."""
    if len(shape) != 4:
        return None
    h, w = input_hw
    for stride in STRIDES:
        grid = (h // stride, w // stride)
        if h % stride or w % stride:
            continue
        if tuple(shape[1:3]) == grid:
            return stride, grid, False
        if tuple(shape[2:4]) == grid:
            return stride, grid, True
    return None


def _channels(shape: tuple[int, ...], nchw: bool) -> int:
    return shape[1] if nchw else shape[3]


def zoo_branches(outputs: Sequence[TensorSpec], input_hw: tuple[int, int]) -> list[Branch] | None:
    """The branches when the outputs have the zoo layout (6 or 9 grid tensors, 3 strides), else None."""
    if len(outputs) not in (6, 9) or input_hw == (0, 0):
        return None
    per_stride: dict[int, list[tuple[int, int, bool, tuple[int, int]]]] = {}
    for index, spec in enumerate(outputs):
        found = _grid_of(spec.shape, input_hw)
        if found is None:
            return None
        stride, grid, nchw = found
        per_stride.setdefault(stride, []).append((index, _channels(spec.shape, nchw), nchw, grid))
    if sorted(per_stride) != list(STRIDES):
        return None
    branches = []
    for stride in STRIDES:
        tensors = [t for t in per_stride[stride] if t[1] != 1]  # drop score_sum
        if len(tensors) != 2 or tensors[0][1] % SIDES:
            return None
        (box, _, box_nchw, grid), (cls, _, cls_nchw, _) = tensors  # the zoo's order: box, then cls
        branches.append(Branch(stride, box, cls, box_nchw, cls_nchw, grid))
    return branches


def _nhwc(array: np.ndarray, nchw: bool) -> np.ndarray:
    """(rows, cols, channels) of a 1-batch tensor."""
    return np.asarray(array[0].transpose(1, 2, 0) if nchw else array[0])


def dfl(bins: np.ndarray) -> np.ndarray:
    """(..., 4 * reg_max) bin logits -> (..., 4) expected distances (softmax, then mean bin)."""
    reg_max = bins.shape[-1] // SIDES
    logits = bins.reshape(*bins.shape[:-1], SIDES, reg_max)
    logits = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.asarray((weights * np.arange(reg_max, dtype=np.float32)).sum(axis=-1), np.float32)


class ZooYoloDecoder:
    """Candidates (normalised x1, y1, x2, y2, score, class) from the zoo's multi-output YOLOv8/11 head."""

    def __init__(self, outputs: Sequence[TensorSpec], classes: int, input_hw: tuple[int, int]) -> None:
        branches = zoo_branches(outputs, input_hw)
        if branches is None:
            shapes = [list(o.shape) for o in outputs]
            raise ModelRejected(
                f"outputs {shapes} are not rknn_model_zoo's YOLOv8/YOLO11 layout (box + class scores "
                f"[+ score sum] for strides {STRIDES} of a {input_hw[0]}x{input_hw[1]} input)"
            )
        width = _channels(outputs[branches[0].cls].shape, branches[0].cls_nchw)
        if classes and width != classes:
            raise ModelRejected(f"class score outputs have {width} classes, the model has {classes} labels")
        self._branches = branches
        self._specs = tuple(outputs)
        self._input_hw = input_hw

    def __call__(self, outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes (N, 4) normalised, scores (N,), classes (N,))."""
        h, w = self._input_hw
        boxes, scores, classes = [], [], []
        for b in self._branches:
            bins = _nhwc(dequantize(outputs[b.box], self._specs[b.box]), b.box_nchw)
            cls = _nhwc(dequantize(outputs[b.cls], self._specs[b.cls]), b.cls_nchw)
            rows, cols = b.grid
            dist = dfl(bins.reshape(rows * cols, -1))
            gy, gx = np.divmod(np.arange(rows * cols, dtype=np.float32), cols)
            cx, cy = gx + 0.5, gy + 0.5
            xyxy = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1)
            boxes.append(xyxy * b.stride / np.array([w, h, w, h], np.float32))
            flat = cls.reshape(rows * cols, -1)
            best = np.argmax(flat, axis=1)
            classes.append(best)
            scores.append(flat[np.arange(len(best)), best])
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
