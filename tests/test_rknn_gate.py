"""The int8 gate on the face detector, with the fake toolkit (real LiteRT runs the model; int8 is
simulated by calibrated ranges, see tests/fakes/rknn/api.py) and the real report logic.

The case from issue 12: calibrated on 20 dark-noise images, the face model used to "pass" (verified on
those same images, "no boxes on both sides" counted as agreement) and found no faces on real frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.models.registry import Registry
from tests.test_rknn_convert import convert, make_venv


@dataclass(frozen=True)
class Gate:
    data_dir: Path
    registry: Registry
    venv: Path
    source: Path

    def convert(self, *args: str) -> int:
        return convert(self.data_dir, str(self.source), "--model", "face", "--venv", str(self.venv), *args)


@pytest.fixture
def gate(tmp_path: Path, data_dir: Path, registry: Registry) -> Gate:
    source = tmp_path / "src" / "face.onnx"
    source.parent.mkdir()
    source.write_bytes(b"onnx model (the fake toolkit reads face.tflite beside it)")
    twin = registry.files_of(registry.get("face"))[".tflite"]
    source.with_suffix(".tflite").write_bytes(twin.read_bytes())
    return Gate(data_dir, registry, make_venv(tmp_path / "venv-rknn"), source)


def dark_noise(folder: Path, count: int = 20) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(count):
        cv2.imwrite(str(folder / f"noise{i:02d}.png"), rng.integers(0, 40, (256, 256, 3), dtype=np.uint8))
    return folder


def faces(folder: Path, astronaut: np.ndarray, variants: list[tuple[bool, float, int]]) -> Path:
    """The astronaut frame flipped, brightened and shifted: different images, each with one face."""
    folder.mkdir()
    for i, (flip, gain, shift) in enumerate(variants):
        image = cv2.flip(astronaut, 1) if flip else astronaut
        image = np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        image = np.roll(image, shift, axis=1)
        cv2.imwrite(str(folder / f"face{i:02d}.png"), image)
    return folder


CALIBRATE = [(f, g, s) for f in (False, True) for g in (0.8, 1.0, 1.15) for s in (0, 24)]
VERIFY = [(False, 0.9, 12), (True, 1.05, 36), (False, 1.1, 48), (True, 0.85, 6)]


def test_noise_calibration_is_refused_without_real_verify_images(
    tmp_path: Path, gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    active = gate.registry.active()
    calib = dark_noise(tmp_path / "noise")
    assert gate.convert("--int8", "--calib", str(calib), "--activate") == 1
    out = capsys.readouterr().out
    assert "the float model finds no box" in out and "cannot be activated" in out
    report = gate.registry.get("face").report or {}
    assert report["passed"] is False and report["reference_boxes"] == 0
    assert gate.registry.active() == active


def test_noise_calibration_is_refused_on_real_faces(
    tmp_path: Path, gate: Gate, astronaut: np.ndarray
) -> None:
    calib = dark_noise(tmp_path / "noise")
    check = faces(tmp_path / "verify", astronaut, VERIFY)
    assert gate.convert("--int8", "--calib", str(calib), "--verify", str(check)) == 1
    report = gate.registry.get("face").report or {}
    assert report["reference_boxes"] >= len(VERIFY)  # the float model sees the faces
    assert report["box_recall"] < 0.5 and report["passed"] is False
    assert any("box recall" in p for p in report["problems"])


def test_a_sensible_calibration_passes_with_boxes_agreeing(
    tmp_path: Path, gate: Gate, astronaut: np.ndarray
) -> None:
    calib = faces(tmp_path / "calib", astronaut, CALIBRATE)
    check = faces(tmp_path / "verify", astronaut, VERIFY)
    assert gate.convert("--int8", "--calib", str(calib), "--verify", str(check)) == 0
    report = gate.registry.get("face").report or {}
    assert report["passed"] is True and report["samples"] == len(VERIFY)
    assert report["box_recall"] >= 0.9 and report["box_precision"] >= 0.9


def test_verify_images_must_differ_from_the_calibration(
    tmp_path: Path, gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    calib = dark_noise(tmp_path / "noise", count=3)
    assert gate.convert("--int8", "--calib", str(calib)) == 1  # 3 files: nothing to hold out
    assert "give --verify DIR" in capsys.readouterr().err
    assert gate.convert("--int8", "--calib", str(calib), "--verify", str(calib)) == 1
    assert "also a calibration file" in capsys.readouterr().err


def test_force_activates_a_failed_version_and_says_so(tmp_path: Path, gate: Gate) -> None:
    calib = dark_noise(tmp_path / "noise")
    assert gate.convert("--int8", "--calib", str(calib), "--activate", "--force") == 1  # still failed
    made = gate.registry.get("face")
    active = gate.registry.active()
    assert active is not None and active.ref == made.ref
    report = made.report or {}
    assert report["passed"] is False and report["forced"]["problems"] == report["problems"]
