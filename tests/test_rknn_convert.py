"""`appliance models convert` end to end: the real worker script runs in a separate interpreter
("the toolkit venv", here a wrapper that puts the fake rknn-toolkit2 on its path), the report is
computed by the real pre/post-processing, and the result lands in the real registry."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.convert.verify import (
    Comparison,
    VerifyThresholds,
    box_agreement,
    box_score,
    cosine,
    iou,
    verify,
)
from appliance.models.registry import Registry
from appliance.processing.inference import Detection, Inference
from appliance.processing.tensor import IDENTITY
from appliance_tools.demo import stripes
from tests.conftest import CACHE
from tests.fakes.fixtures import FAKES

STRIPES = CACHE / "models" / "stripes.tflite"


def make_venv(root: Path, **env: str) -> Path:
    """A 'venv' whose python runs this interpreter with the fake toolkit on its path."""
    python = root / "bin" / "python"
    python.parent.mkdir(parents=True)
    exports = "".join(f"{key}={value} " for key, value in env.items())
    python.write_text(f'#!/bin/sh\n{exports}PYTHONPATH="{FAKES}" exec "{sys.executable}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return root


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    return make_venv(tmp_path / "venv-rknn")


def convert(data_dir: Path, *args: str) -> int:
    return main(["models", "convert", "--data-dir", str(data_dir), *args])


def stripe_images(folder: Path, count: int = 12) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(count):
        label = stripes.LABELS[i % len(stripes.LABELS)]
        rgb = stripes.make_sample(label, rng)
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


def test_tflite_to_fp16_rknn_is_verified_and_stored(
    data_dir: Path, registry: Registry, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = registry.get("stripes")
    assert convert(data_dir, str(STRIPES), "--venv", str(venv)) == 0
    out, err = capsys.readouterr()
    for stage in ("samples", "config", "load", "build", "export", "simulate", "verify", "store"):
        assert f"convert: {stage}" in err
    assert "verification passed" in out
    made = registry.get("stripes")
    assert made.version == before.version + 1
    assert made.files == {".tflite": "model.tflite", ".rknn": "model.rknn"}
    assert (registry.version_dir("stripes", made.version) / "model.rknn").read_bytes().startswith(b"RKNNFAKE")
    report = made.report or {}
    assert report["passed"] is True and report["dtype"] == "fp16" and report["target"] == "rk3588"
    assert report["samples"] == 16 and report["same_label"] == 1.0
    assert report["outputs"][0]["cosine"] > 0.99999 and report["outputs"][0]["max_abs_error"] < 1e-5
    assert made.labels == before.labels and made.input == before.input


def test_int8_uses_the_calibration_set(
    tmp_path: Path, data_dir: Path, registry: Registry, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calib = stripe_images(tmp_path / "calib", count=20)
    args = ["--int8", "--calib", str(calib), "--samples", "8", "--venv", str(venv), "--activate"]
    assert convert(data_dir, str(STRIPES), "--model", "stripes", *args) == 0
    report = registry.get("stripes").report or {}
    # every 4th of the 20 files is held out: verified on 5 images it was not calibrated on
    assert report["dtype"] == "int8" and report["samples"] == 5 and report["passed"] is True
    assert report["verified_on"] == "held-out calibration split"
    assert 0.0 < report["outputs"][0]["max_abs_error"] < 0.05  # quantisation-like error, but small
    active = registry.active()
    assert active is not None and active.ref == registry.get("stripes").ref
    assert "active: stripes:" in capsys.readouterr().out


def test_detector_from_onnx_reports_box_agreement(
    tmp_path: Path, data_dir: Path, registry: Registry, venv: Path, astronaut: np.ndarray
) -> None:
    source = tmp_path / "src" / "face.onnx"
    source.parent.mkdir()
    source.write_bytes(b"onnx model (the fake toolkit reads face.tflite beside it)")
    twin = registry.files_of(registry.get("face"))[".tflite"]
    source.with_suffix(".tflite").write_bytes(twin.read_bytes())
    calib = tmp_path / "calib"
    calib.mkdir()
    cv2.imwrite(str(calib / "astronaut.png"), astronaut)
    assert convert(data_dir, str(source), "--model", "face", "--calib", str(calib), "--venv", str(venv)) == 0
    made = registry.get("face")
    report = made.report or {}
    assert report["source"] == "face.onnx" and report["samples"] == 1
    assert report["box_agreement"] == 1.0 and report["mean_box_iou"] == pytest.approx(1.0)
    assert [row["name"] for row in report["outputs"]] == [s.name for s in made.outputs]


def test_a_failing_report_flags_the_version(
    tmp_path: Path, data_dir: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = make_venv(tmp_path / "broken", FAKE_RKNN_BROKEN="1")
    active = registry.active()
    assert convert(data_dir, str(STRIPES), "--venv", str(broken), "--activate") == 1
    assert "verification FAILED" in capsys.readouterr().out
    report = registry.get("stripes").report or {}
    assert report["passed"] is False and any("cosine" in p for p in report["problems"])
    assert registry.active() == active  # not activated


def test_missing_toolkit_and_bad_requests(
    tmp_path: Path, data_dir: Path, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert convert(data_dir, str(STRIPES), "--venv", str(tmp_path / "nowhere")) == 1
    assert "make rknn-tools" in capsys.readouterr().err
    assert convert(data_dir, str(STRIPES), "--int8", "--venv", str(venv)) == 1
    assert "--int8 needs --calib" in capsys.readouterr().err
    other = tmp_path / "unknown.tflite"
    other.write_bytes(STRIPES.read_bytes())
    assert convert(data_dir, str(other), "--venv", str(venv)) == 1
    assert "appliance models add" in capsys.readouterr().err


def test_toolkit_failure_shows_its_log(
    tmp_path: Path, data_dir: Path, venv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "lonely.onnx"  # the fake finds no lonely.tflite beside it: load_onnx fails
    source.write_bytes(b"onnx")
    assert convert(data_dir, str(source), "--model", "stripes", "--venv", str(venv)) == 1
    err = capsys.readouterr().err
    assert "load_onnx returned -1" in err and "E load_tflite" in err


def test_report_is_stored_as_json(data_dir: Path, registry: Registry, venv: Path) -> None:
    assert convert(data_dir, str(STRIPES), "--venv", str(venv), "--samples", "2") == 0
    made = registry.get("stripes")
    stored = json.loads((registry.version_dir("stripes", made.version) / "manifest.json").read_text())
    assert stored["report"]["samples"] == 2 and stored["files"][".rknn"] == "model.rknn"


def det(box: tuple[float, float, float, float], label: int = 0, score: float = 0.9) -> Detection:
    return Detection(str(label), label, score, box)


def found(*detections: Detection) -> Inference:
    return Inference(None, None, None, len(detections), tuple(detections))


def test_verification_metrics() -> None:
    a = np.array([1.0, 2.0, 3.0])
    assert cosine(a, a) == pytest.approx(1.0) and cosine(a, -a) == pytest.approx(-1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0 and cosine(np.zeros(3), a) == 0.0
    assert iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    ref = [found(det((0, 0, 10, 10)), det((20, 20, 30, 30))), found()]
    same = [found(det((0, 0, 10, 11)), det((20, 20, 30, 30))), found()]
    score = box_score(ref, same)
    assert score.recall == 1.0 and score.precision == 1.0
    assert score.mean_iou is not None and 0.9 < score.mean_iou < 1.0
    missed_and_extra = [found(det((0, 0, 10, 10))), found(det((5, 5, 9, 9)))]
    score = box_score(ref, missed_and_extra)
    assert score.recall == 0.5 and score.precision == 0.5
    other_class = [found(det((0, 0, 10, 10), label=1), det((20, 20, 30, 30))), found()]
    assert box_score(ref, other_class).recall == 0.5
    nothing = box_score([found()], [found()])
    assert nothing.recall is None and box_agreement([found()], [found()])[0] is None  # not 100 %


def test_scale_errors_fail_even_with_a_perfect_cosine() -> None:
    ref = [[np.array([0.0, 0.5, 1.0], np.float32)]]
    shrunk = [[np.array([0.0, 0.25, 0.5], np.float32)]]  # same direction: cosine 1.0
    report = verify(Comparison("classify", ("probs",), ref, shrunk, [IDENTITY]), None, VerifyThresholds())
    assert report["outputs"][0]["cosine"] == pytest.approx(1.0)
    assert report["passed"] is False and "of the float output's range" in report["problems"][0]
