"""rknn_model_zoo's YOLOv8/YOLO11 multi-output head, on synthetic tensors: the same boxes encoded both
as the stock single [1, 4+C, N] output and as the zoo's per-stride DFL boxes + class scores (+ score
sums) must give the same detections through the same Detector."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.errors import ModelRejected
from appliance.processing.detect import Detector
from appliance.processing.inference import Transform
from appliance.processing.yolo_zoo import STRIDES, dfl, zoo_branches
from appliance.tensorspec import TensorSpec
from tests.test_processing import manifest

SIZE = 320  # input; grids 40, 20, 10
REG_MAX = 16
LABELS = ("person", "car", "dog")
# (stride, cell row, cell col, left, top, right, bottom in stride units, class, score)
BOXES = [
    (8, 10, 12, 2.25, 3.5, 4.0, 1.75, 0, 0.92),
    (16, 5, 14, 3.0, 2.5, 1.25, 6.0, 1, 0.81),
    (32, 7, 3, 1.5, 2.75, 2.0, 1.0, 2, 0.66),
]
TRANSFORM = Transform(SIZE, SIZE, 1.0, 1.0, 0.0, 0.0, SIZE, SIZE)


def encode_distance(value: float) -> np.ndarray:
    """Bin logits whose softmax expectation is exactly `value` (two neighbouring bins)."""
    low = int(np.floor(value))
    frac = value - low
    probs = np.full(REG_MAX, 1e-12)
    probs[low] += 1 - frac
    if frac:
        probs[low + 1] += frac
    return np.log(probs / probs.sum()).astype(np.float32)


def zoo_outputs(nchw: bool, with_sums: bool) -> tuple[list[np.ndarray], list[TensorSpec]]:
    arrays, specs = [], []
    for stride in STRIDES:
        g = SIZE // stride
        box = np.full((g, g, 4 * REG_MAX), -30.0, np.float32)
        box[:, :, ::REG_MAX] = 0.0  # empty cells: distance 0
        cls = np.zeros((g, g, len(LABELS)), np.float32)
        for s, row, col, left, top, right, bottom, label, score in BOXES:
            if s == stride:
                box[row, col] = np.concatenate([encode_distance(d) for d in (left, top, right, bottom)])
                cls[row, col, label] = score
        tensors = [box, cls] + ([np.clip(cls.sum(-1, keepdims=True), 0, 1)] if with_sums else [])
        for k, t in enumerate(tensors):
            arr = t.transpose(2, 0, 1)[None] if nchw else t[None]
            arrays.append(np.ascontiguousarray(arr))
            specs.append(TensorSpec(f"s{stride}_{k}", arr.shape, "float32"))
    return arrays, specs


def single_output() -> tuple[np.ndarray, TensorSpec]:
    """The stock [1, 4 + C, N] tensor: cx, cy, w, h in pixels, then class scores, one column per cell."""
    cells = sum((SIZE // s) ** 2 for s in STRIDES)
    rows = np.zeros((1, 4 + len(LABELS), cells), np.float32)
    offset = {s: sum((SIZE // t) ** 2 for t in STRIDES[: STRIDES.index(s)]) for s in STRIDES}
    for stride, row, col, left, top, right, bottom, label, score in BOXES:
        cx, cy = (col + 0.5) * stride, (row + 0.5) * stride
        x1, y1, x2, y2 = cx - left * stride, cy - top * stride, cx + right * stride, cy + bottom * stride
        n = offset[stride] + row * (SIZE // stride) + col
        rows[0, :4, n] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        rows[0, 4 + label, n] = score
    return rows, TensorSpec("output0", rows.shape, "float32")


@pytest.mark.parametrize(("nchw", "with_sums"), [(True, True), (False, True), (True, False)])
def test_zoo_layout_gives_the_same_detections_as_the_single_output(nchw: bool, with_sums: bool) -> None:
    arrays, specs = zoo_outputs(nchw, with_sums)
    assert len(specs) == (9 if with_sums else 6)
    zoo = Detector(manifest(LABELS), specs, (SIZE, SIZE))  # decoder 'auto': told by the shapes
    rows, spec = single_output()
    stock = Detector(manifest(LABELS, kind="yolo"), [spec], (SIZE, SIZE))
    got, want = zoo(arrays, TRANSFORM), stock([rows], TRANSFORM)
    assert got.count == want.count == len(BOXES)
    for a, b in zip(got.detections, want.detections, strict=True):
        assert (a.label, a.label_id) == (b.label, b.label_id)
        assert a.score == pytest.approx(b.score, abs=1e-6)
        assert a.box == pytest.approx(b.box, abs=1e-3)


def test_dfl_is_the_expected_bin() -> None:
    bins = np.concatenate([encode_distance(v) for v in (0.0, 3.25, 7.5, 14.0)])
    assert dfl(bins[None]) == pytest.approx(np.array([[0.0, 3.25, 7.5, 14.0]]), abs=1e-4)


def test_shapes_that_are_not_the_zoo_layout() -> None:
    _, specs = zoo_outputs(True, True)
    assert zoo_branches(specs, (SIZE, SIZE)) is not None
    assert zoo_branches(specs, (640, 640)) is None  # grids do not fit this input size
    assert zoo_branches(specs[:8], (SIZE, SIZE)) is None
    with pytest.raises(ModelRejected, match="3 classes, the model has 2 labels"):
        Detector(manifest(("a", "b")), specs, (SIZE, SIZE))
