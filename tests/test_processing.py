"""Pre/post-processing on real models and real images, plus decoders on hand-made tensors."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from skimage import data as samples

from appliance.config import Config
from appliance.models.manifest import AnchorSpec, DecoderSpec, InputSpec, Manifest, Thresholds
from appliance.models.registry import Registry
from appliance.pipeline.oneshot import OneShot
from appliance.processing.anchors import ssd_anchors
from appliance.processing.detect import Detector
from appliance.processing.image import Preprocessor
from appliance.processing.inference import Transform
from appliance.processing.nms import nms
from appliance.processing.quant import dequantize
from appliance.tensorspec import TensorSpec
from appliance_tools.demo import stripes

# The astronaut's face, confirmed once by eye on a drawn overlay of scikit-image's 512x512 sample.
ASTRONAUT_FACE = (180.0, 82.0, 274.0, 176.0)
ASTRONAUT_EYES = ((204.0, 103.0), (250.0, 110.0))


def centre_and_size(box: tuple[float, float, float, float]) -> tuple[float, float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0]


def test_blazeface_anchor_layout() -> None:
    anchors = ssd_anchors(AnchorSpec(), 128, 128)
    assert anchors.shape == (896, 4)
    assert np.allclose(anchors[0], [0.5 / 16, 0.5 / 16, 1, 1])  # first cell of the 16x16 stride-8 layer
    assert np.allclose(anchors[512], [0.5 / 8, 0.5 / 8, 1, 1])  # first cell of the 8x8 layers


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_face_detector_finds_the_astronaut(registry: Registry, astronaut: np.ndarray, resize: str) -> None:
    manifest = registry.get("face")
    manifest = dataclasses.replace(manifest, input=dataclasses.replace(manifest.input, resize=resize))
    with OneShot(registry, manifest, Config()) as runner:
        result = runner.run(astronaut)
    assert result.count == 1
    face = result.detections[0]
    assert face.label == "face" and face.score > 0.8
    cx, cy, size = centre_and_size(face.box)
    ex, ey, esize = centre_and_size(ASTRONAUT_FACE)
    assert abs(cx - ex) < 8 and abs(cy - ey) < 8 and abs(size - esize) < 12
    (lx, ly), (rx, ry) = face.keypoints[0], face.keypoints[1]
    assert abs(lx - ASTRONAUT_EYES[0][0]) < 8 and abs(ly - ASTRONAUT_EYES[0][1]) < 8
    assert abs(rx - ASTRONAUT_EYES[1][0]) < 8 and abs(ry - ASTRONAUT_EYES[1][1]) < 8


def test_face_detector_boxes_follow_the_source_pixels(registry: Registry, astronaut: np.ndarray) -> None:
    """The same face in a larger, shifted canvas comes back shifted and scaled in source pixels."""
    canvas = np.full((600, 640, 3), 40, np.uint8)
    canvas[60:572, 100:612] = astronaut
    with OneShot(registry, registry.get("face"), Config()) as runner:
        result = runner.run(canvas)
    assert result.count == 1
    cx, cy, _ = centre_and_size(result.detections[0].box)
    ex, ey, _ = centre_and_size(ASTRONAUT_FACE)
    assert abs(cx - (ex + 100)) < 10 and abs(cy - (ey + 60)) < 10


def test_no_face_in_a_photo_without_people(registry: Registry) -> None:
    rocket = cv2.cvtColor(samples.rocket(), cv2.COLOR_RGB2BGR)
    with OneShot(registry, registry.get("face"), Config()) as runner:
        result = runner.run(rocket)
    assert result.count == 0 and result.label is None


def test_selfie_segmentation_covers_the_astronaut(registry: Registry, astronaut: np.ndarray) -> None:
    with OneShot(registry, registry.get("selfie"), Config()) as runner:
        person = runner.run(astronaut)
        empty = runner.run(cv2.cvtColor(samples.rocket(), cv2.COLOR_RGB2BGR)[:300, :300])
    assert person.label == "person"
    assert 0.25 < person.extra["coverage"] < 0.8
    x1, y1, x2, y2 = person.extra["mask_box"]
    # the mask box holds the face and reaches down to the bottom of the picture (the suit)
    assert x1 < ASTRONAUT_FACE[0] and y1 < ASTRONAUT_FACE[1] and x2 > ASTRONAUT_FACE[2] and y2 > 450
    assert empty.extra["coverage"] < 0.05


@pytest.mark.parametrize("model", ["stripes", "stripes_uint8"])
def test_project_classifier_is_right_on_its_inputs(registry: Registry, model: str) -> None:
    rng = np.random.default_rng(2024)
    manifest = registry.get(model)
    right = 0
    with OneShot(registry, manifest, Config()) as runner:
        for i in range(60):
            label = stripes.LABELS[i % 3]
            rgb = stripes.make_sample(label, rng, size=96)  # a larger image: the pipeline resizes it
            result = runner.run(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            right += result.label == label
            assert len(result.extra["top_k"]) == 3
    assert right >= 58


def test_quantised_input_is_quantised_with_scale_and_zero_point() -> None:
    spec = TensorSpec("in", (1, 2, 2, 3), "int8", scale=1 / 128, zero_point=-1)
    pre = Preprocessor(spec, InputSpec(mean=(127.5,) * 3, std=(127.5,) * 3), ring=2)
    image = np.array([[[0, 0, 0], [255, 255, 255]], [[128, 128, 128], [64, 64, 64]]], np.uint8)
    tensor, _ = pre(image)
    real = (image[..., ::-1].astype(np.float32) - 127.5) / 127.5
    expected = np.clip(np.rint(real * 128 - 1), -128, 127).astype(np.int8)
    assert tensor.dtype == np.int8
    assert np.array_equal(tensor[0], expected)
    out = TensorSpec("out", (1, 3), "uint8", scale=0.5, zero_point=10)
    assert np.allclose(dequantize(np.array([[10, 12, 20]], np.uint8), out), [[0.0, 1.0, 5.0]])


def test_letterbox_maps_back_to_source() -> None:
    spec = TensorSpec("in", (1, 100, 100, 3), "float32")
    pre = Preprocessor(spec, InputSpec(resize="letterbox"), ring=1)
    _, transform = pre(np.zeros((50, 200, 3), np.uint8))
    assert transform.pad_y == 37.0 and transform.pad_x == 0.0
    assert transform.to_source(0.5, 0.5) == pytest.approx((100.0, 26.0))  # (50 - 37) / 0.5
    assert transform.to_source(0.0, 0.0) == (0.0, 0.0)  # clipped into the image


def manifest(labels: tuple[str, ...], **decoder: object) -> Manifest:
    return Manifest(
        "m",
        1,
        "detect",
        "m.tflite",
        "0" * 64,
        1,
        "now",
        labels=labels,
        thresholds=Thresholds(score=0.5, iou=0.5),
        decoder=DecoderSpec(**decoder),
    )  # type: ignore[arg-type]


IDENTITY_100 = Transform(100, 100, 1.0, 1.0, 0.0, 0.0, 100, 100)


def test_yolov5_grid_output() -> None:
    rows = np.zeros((1, 4, 7), np.float32)  # cx, cy, w, h, objectness, 2 classes; pixel units
    rows[0, 0] = [50, 50, 20, 20, 0.9, 0.1, 0.9]
    rows[0, 1] = [52, 50, 20, 20, 0.8, 0.1, 0.9]  # overlaps the first: suppressed
    rows[0, 2] = [10, 10, 8, 8, 0.9, 0.95, 0.05]
    rows[0, 3] = [80, 80, 8, 8, 0.3, 0.9, 0.1]  # below threshold after objectness
    detector = Detector(
        manifest(("cat", "dog"), kind="yolo"), [TensorSpec("o", (1, 4, 7), "float32")], (100, 100)
    )
    result = detector([rows], IDENTITY_100)
    assert result.count == 2
    assert [d.label for d in result.detections] == ["cat", "dog"]  # 0.95 * 0.9 beats 0.9 * 0.9
    assert result.detections[1].box == pytest.approx((40, 40, 60, 60))
    assert result.detections[1].score == pytest.approx(0.81)


def test_yolov8_transposed_output() -> None:
    rows = np.zeros((1, 6, 3), np.float32)  # (4 + 2 classes) x 3 boxes, normalised coordinates
    rows[0, :, 0] = [0.5, 0.5, 0.2, 0.2, 0.1, 0.7]
    rows[0, :, 1] = [0.2, 0.2, 0.1, 0.1, 0.2, 0.1]
    detector = Detector(
        manifest(("a", "b"), kind="yolo"), [TensorSpec("o", (1, 6, 3), "float32")], (100, 100)
    )
    result = detector([rows], IDENTITY_100)
    assert result.count == 1 and result.label == "b"
    assert result.detections[0].box == pytest.approx((40, 40, 60, 60))


def test_ssd_postprocessed_outputs() -> None:
    specs = [
        TensorSpec("boxes", (1, 3, 4), "float32"),
        TensorSpec("classes", (1, 3), "float32"),
        TensorSpec("scores", (1, 3), "float32"),
        TensorSpec("count", (1,), "float32"),
    ]
    outputs = [
        np.array([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.9], [0, 0, 1, 1]]], np.float32),
        np.array([[1, 0, 0]], np.float32),
        np.array([[0.9, 0.6, 0.99]], np.float32),
        np.array([2], np.float32),
    ]
    result = Detector(manifest(("a", "b")), specs, (100, 100))(outputs, IDENTITY_100)
    assert result.count == 2  # the third box is past the count
    assert result.detections[0].label == "b"
    assert result.detections[0].box == pytest.approx((20, 10, 40, 30))


def test_nms_keeps_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.8, 0.9, 0.5]), 0.5, 10) == [1, 2]
    assert nms(boxes, np.array([0.8, 0.9, 0.5]), 0.5, 1) == [1]


@pytest.mark.parametrize(
    ("color", "mean", "std"),
    [("rgb", (10.0, 20.0, 30.0), (1.0, 2.0, 4.0)), ("bgr", (127.5,), (127.5,)), ("gray", (5.0,), (2.0,))],
)
def test_normalisation_per_channel_and_uniform(
    color: str, mean: tuple[float, ...], std: tuple[float, ...]
) -> None:
    channels = 1 if color == "gray" else 3
    spec = TensorSpec("in", (1, 4, 4, channels), "float32")
    pre = Preprocessor(spec, InputSpec(color=color, mean=mean, std=std), ring=1)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    tensor, _ = pre(image)
    if color == "rgb":
        pixels = image[..., ::-1].astype(np.float32)
    elif color == "gray":
        pixels = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[..., None].astype(np.float32)
    else:
        pixels = image.astype(np.float32)
    expected = (pixels - np.array(mean, np.float32)) / np.array(std, np.float32)
    assert np.allclose(tensor[0], expected, atol=1e-5)
