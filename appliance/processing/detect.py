"""Object detection post-processing: SSD/BlazeFace anchors, YOLO grids, SSD post-processed outputs.

Each decoder turns raw outputs into candidate boxes (normalised x1, y1, x2, y2 of the model input),
scores and class ids; `Detector` applies the score threshold and NMS and maps boxes to source pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from appliance.errors import ModelRejected
from appliance.models.manifest import AnchorSpec, Manifest
from appliance.processing.anchors import ssd_anchors
from appliance.processing.inference import Detection, Inference, Transform
from appliance.processing.nms import nms
from appliance.processing.quant import dequantize
from appliance.processing.yolo_zoo import ZooYoloDecoder, zoo_branches
from appliance.tensorspec import TensorSpec

SCORE_CLIP = 80.0  # MediaPipe clips at 100; exp(100) overflows float32
YOLO_NORMALISED_MAX = 1.5  # coordinates no larger than this are taken as already normalised


@dataclass(frozen=True)
class Candidates:
    boxes: np.ndarray  # (N, 4) normalised x1, y1, x2, y2
    scores: np.ndarray  # (N,)
    classes: np.ndarray  # (N,) int
    keypoints: np.ndarray | None = None  # (N, K, 2) normalised


class Decoder(Protocol):
    def __call__(self, outputs: Sequence[np.ndarray]) -> Candidates: ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -SCORE_CLIP, SCORE_CLIP))))


class AnchorDecoder:
    """SSD-style box regression against anchors (MediaPipe TensorsToDetections semantics)."""

    def __init__(self, outputs: Sequence[TensorSpec], spec: AnchorSpec, input_hw: tuple[int, int]) -> None:
        if len(outputs) != 2 or any(len(o.shape) != 3 for o in outputs):
            raise ModelRejected("anchor decoder needs two outputs shaped 1xNxK (box regressors and scores)")
        a, b = outputs
        if a.shape[1] != b.shape[1]:
            raise ModelRejected(f"anchor outputs disagree on box count: {a.shape[1]} vs {b.shape[1]}")
        self._reg, self._cls = (0, 1) if a.shape[2] >= b.shape[2] else (1, 0)
        self._specs = outputs
        self._coords = outputs[self._reg].shape[2]
        if self._coords < 4:
            raise ModelRejected("box regressor output needs at least 4 values per box")
        self._anchors = ssd_anchors(spec, *input_hw)
        if len(self._anchors) != a.shape[1]:
            raise ModelRejected(
                f"model predicts {a.shape[1]} boxes but the anchor settings give {len(self._anchors)}"
            )
        self._scale = spec.box_scale
        self._xy_first = spec.reverse_output_order  # MediaPipe: True means x, y, w, h

    def __call__(self, outputs: Sequence[np.ndarray]) -> Candidates:
        raw = dequantize(outputs[self._reg], self._specs[self._reg])[0]
        logits = dequantize(outputs[self._cls], self._specs[self._cls])[0]
        scores_all = _sigmoid(logits)
        classes = np.argmax(scores_all, axis=1)
        scores = scores_all[np.arange(len(classes)), classes]
        anchors = self._anchors
        order = (0, 1, 2, 3) if self._xy_first else (1, 0, 3, 2)
        dx, dy, dw, dh = (raw[:, i] / self._scale for i in order)
        cx = dx * anchors[:, 2] + anchors[:, 0]
        cy = dy * anchors[:, 3] + anchors[:, 1]
        w, h = dw * anchors[:, 2], dh * anchors[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        kp_count = (self._coords - 4) // 2
        keypoints = raw[:, 4 : 4 + 2 * kp_count].reshape(-1, kp_count, 2) / self._scale
        keypoints = keypoints * anchors[:, None, 2:4] + anchors[:, None, 0:2]
        return Candidates(boxes, scores, classes, keypoints if kp_count else None)


class YoloDecoder:
    """One grid output: 1xNx(5+C) (YOLOv5: box, objectness, classes) or 1x(4+C)xN (YOLOv8, transposed)."""

    def __init__(self, output: TensorSpec, classes: int, input_hw: tuple[int, int]) -> None:
        if len(output.shape) != 3:
            raise ModelRejected(f"YOLO output must be 1xNxK, got {list(output.shape)}")
        _, d1, d2 = output.shape
        widths = (4 + classes, 5 + classes)
        if classes and d2 in widths:
            self._transposed = False
        elif classes and d1 in widths:
            self._transposed = True
        elif classes:
            raise ModelRejected(
                f"YOLO output {list(output.shape)} does not fit {classes} labels (4 or 5 + C)"
            )
        else:
            self._transposed = d1 < d2  # boxes outnumber the values per box
        width = d1 if self._transposed else d2
        self._objectness = width == 5 + classes if classes else not self._transposed
        if width < 5:
            raise ModelRejected(f"YOLO output rows of {width} values are too short")
        self._spec = output
        self._input_hw = input_hw

    def __call__(self, outputs: Sequence[np.ndarray]) -> Candidates:
        rows = dequantize(outputs[0], self._spec)[0]
        if self._transposed:
            rows = rows.T
        box = rows[:, :4]
        class_scores = rows[:, 5:] * rows[:, 4:5] if self._objectness else rows[:, 4:]
        classes = np.argmax(class_scores, axis=1)
        scores = class_scores[np.arange(len(classes)), classes]
        if float(np.max(np.abs(box), initial=0.0)) > YOLO_NORMALISED_MAX:
            h, w = self._input_hw
            box = box / np.array([w, h, w, h], np.float32)
        cx, cy, bw, bh = box[:, 0], box[:, 1], box[:, 2], box[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        return Candidates(boxes, scores, classes)


class ZooYolo:
    """rknn_model_zoo's multi-output YOLOv8/YOLO11 head (yolo_zoo.py), as a Decoder."""

    def __init__(self, outputs: Sequence[TensorSpec], classes: int, input_hw: tuple[int, int]) -> None:
        self._decode = ZooYoloDecoder(outputs, classes, input_hw)

    def __call__(self, outputs: Sequence[np.ndarray]) -> Candidates:
        boxes, scores, classes = self._decode(outputs)
        return Candidates(boxes, scores, classes)


class SsdPostprocessedDecoder:
    """TFLite_Detection_PostProcess outputs: boxes (ymin, xmin, ymax, xmax), classes, scores, count."""

    def __init__(self, outputs: Sequence[TensorSpec]) -> None:
        if len(outputs) != 4:
            raise ModelRejected("post-processed SSD needs 4 outputs: boxes, classes, scores, count")
        boxes = [i for i, o in enumerate(outputs) if len(o.shape) == 3 and o.shape[-1] == 4]
        if not boxes:
            raise ModelRejected("post-processed SSD has no 1xNx4 boxes output")
        self._boxes = boxes[0]
        rest = [i for i in range(4) if i != self._boxes and len(outputs[i].shape) == 2]
        counts = [i for i in range(4) if len(outputs[i].shape) == 1]
        if len(rest) != 2 or len(counts) != 1:
            raise ModelRejected(
                "post-processed SSD outputs must be boxes 1xNx4, classes 1xN, scores 1xN, count 1"
            )
        self._classes, self._scores = rest
        self._count = counts[0]

    def __call__(self, outputs: Sequence[np.ndarray]) -> Candidates:
        count = int(np.asarray(outputs[self._count]).reshape(-1)[0])
        yx = np.asarray(outputs[self._boxes], np.float32)[0][:count]
        boxes = yx[:, [1, 0, 3, 2]]
        scores = np.asarray(outputs[self._scores], np.float32)[0][:count]
        classes = np.asarray(outputs[self._classes]).astype(np.int64)[0][:count]
        return Candidates(boxes, scores, classes)


def make_decoder(manifest: Manifest, outputs: Sequence[TensorSpec], input_hw: tuple[int, int]) -> Decoder:
    kind = manifest.decoder.kind
    zoo = zoo_branches(outputs, input_hw) is not None  # told apart by the output shapes
    if kind == "auto":
        kind = "yolo" if zoo else {4: "ssd_postprocessed", 2: "anchors", 1: "yolo"}.get(len(outputs), "")
        if not kind:
            raise ModelRejected(f"cannot tell the detector type from {len(outputs)} outputs; set --decoder")
    if kind == "anchors":
        return AnchorDecoder(outputs, manifest.decoder.anchors, input_hw)
    if kind == "yolo":
        if len(outputs) == 1:
            return YoloDecoder(outputs[0], len(manifest.labels), input_hw)
        return ZooYolo(outputs, len(manifest.labels), input_hw)
    return SsdPostprocessedDecoder(outputs)


class Detector:
    """Score threshold, NMS, and boxes in source-image pixels."""

    def __init__(self, manifest: Manifest, outputs: Sequence[TensorSpec], input_hw: tuple[int, int]) -> None:
        self._manifest = manifest
        self._decode = make_decoder(manifest, outputs, input_hw)

    def __call__(self, outputs: Sequence[np.ndarray], transform: Transform) -> Inference:
        th = self._manifest.thresholds
        cand = self._decode(outputs)
        keep = np.flatnonzero(cand.scores >= th.score)
        kept = [int(keep[i]) for i in nms(cand.boxes[keep], cand.scores[keep], th.iou, th.max_detections)]
        detections = tuple(self._detection(cand, i, transform) for i in kept)
        if not detections:
            return Inference(None, None, None, 0)
        best = detections[0]
        return Inference(best.label, best.label_id, best.score, len(detections), detections)

    def _detection(self, cand: Candidates, i: int, transform: Transform) -> Detection:
        x1, y1 = transform.to_source(float(cand.boxes[i, 0]), float(cand.boxes[i, 1]))
        x2, y2 = transform.to_source(float(cand.boxes[i, 2]), float(cand.boxes[i, 3]))
        points: tuple[tuple[float, float], ...] = ()
        if cand.keypoints is not None:
            points = tuple(transform.to_source(float(x), float(y)) for x, y in cand.keypoints[i])
        class_id = int(cand.classes[i])
        return Detection(
            self._manifest.label_of(class_id), class_id, float(cand.scores[i]), (x1, y1, x2, y2), points
        )
