"""Detect -> classify each crop with real LiteRT models: the face detector and the stripes classifier."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from appliance.config import parse_config
from appliance.inspection.chain import UNCLASSIFIED, CropClassifier, classify_boxes, crop_box, second_stage
from appliance.pipeline.oneshot import OneShot
from appliance.services import open_registry
from appliance_tools.demo import stripes
from appliance_tools.demo.tflite_builder import GraphBuilder


def striped(image: np.ndarray, direction: str) -> np.ndarray:
    """Adds sinusoidal stripes (amplitude 40, period 8 px) running across rows (h) or columns (v)."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    wave = 40.0 * np.sin(2 * np.pi * (yy if direction == "h" else xx) / 8.0)
    return np.clip(image.astype(np.float32) + wave[..., None], 0, 255).astype(np.uint8)


def test_chain_gives_the_classifier_label_per_detected_box(
    seeded_registry_dir: Path, astronaut: np.ndarray
) -> None:
    registry = open_registry(seeded_registry_dir)
    face_crop = np.ascontiguousarray(astronaut[20:260, 110:350])
    frame = np.concatenate([striped(face_crop, "h"), striped(face_crop, "v")], axis=1)
    with OneShot(registry, registry.get("face"), parse_config("")) as face:
        result = face.run(frame)
    assert result.count == 2
    manifest = registry.get("stripes")
    classifier = CropClassifier(manifest, registry.files_of(manifest))
    try:
        chained = second_stage(result, frame, classifier)
    finally:
        classifier.close()
    by_side = {("left" if d.box[0] < 240 else "right"): d for d in chained.detections}
    assert by_side["left"].label == "horizontal_stripes"
    assert by_side["right"].label == "vertical_stripes"
    assert all(d.score > 0.9 for d in chained.detections)
    assert [d.box for d in chained.detections] == [d.box for d in result.detections]
    stage = chained.extra["second_stage"]
    assert stage["model"] == "stripes" and [d["label"] for d in stage["detector"]] == ["face", "face"]


def test_crops_are_batched_into_a_batched_model(tmp_path: Path, seeded_registry_dir: Path) -> None:
    builder = GraphBuilder("stripes, batch 4")
    image = builder.add_input("image", (4, stripes.INPUT_SIZE, stripes.INPUT_SIZE, 3))
    builder.mark_outputs(stripes._classifier(builder, image, "probabilities"))
    path = tmp_path / "stripes_b4.tflite"
    path.write_bytes(builder.to_bytes())
    registry = open_registry(seeded_registry_dir)
    manifest = registry.get("stripes")
    batched = CropClassifier(dataclasses.replace(manifest, name="stripes_b4"), {".tflite": path})
    single = CropClassifier(manifest, registry.files_of(manifest))
    rng = np.random.default_rng(7)
    labels = ["blank", "horizontal_stripes", "vertical_stripes"] * 2  # 6 crops: 2 runs, the last padded
    canvas = np.concatenate([stripes.make_sample(label, rng)[..., ::-1] for label in labels], axis=1)
    boxes = [(64.0 * i, 0.0, 64.0 * (i + 1), 64.0) for i in range(6)]
    try:
        assert batched.batch == 4 and single.batch == 1
        got = classify_boxes(batched, np.ascontiguousarray(canvas), boxes)
        ref = classify_boxes(single, np.ascontiguousarray(canvas), boxes)
    finally:
        batched.close()
        single.close()
    assert [c.label for c in got] == labels
    assert [c.label for c in ref] == labels
    assert np.allclose([c.score for c in got], [c.score for c in ref], atol=1e-4)


def test_boxes_are_clamped_and_empty_ones_unclassified(seeded_registry_dir: Path) -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    crop = crop_box(image, (-20.0, -5.0, 50.5, 300.0))
    assert crop is not None and crop.shape == (100, 51, 3)
    assert crop_box(image, (250.0, 0.0, 300.0, 10.0)) is None
    assert crop_box(image, (float("nan"), 0.0, 10.0, 10.0)) is None
    registry = open_registry(seeded_registry_dir)
    manifest = registry.get("stripes")
    classifier = CropClassifier(manifest, registry.files_of(manifest))
    try:
        labels = classify_boxes(classifier, image, [(300.0, 0.0, 310.0, 10.0), (0.0, 0.0, 100.0, 100.0)])
    finally:
        classifier.close()
    assert labels[0].label == UNCLASSIFIED and labels[0].label_id == -1
    assert labels[1].label == "blank"
