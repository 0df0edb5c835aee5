"""Opt-in (`make test-rknn`): the REAL rknn-toolkit2 simulator converts an ONNX model the project
builds (the stripes classifier, written with the `onnx` package's helpers inside the toolkit venv)
to fp16 and int8 .rknn, and the verification report against LiteRT must pass.

Fails unless APPLIANCE_RKNN_VENV names a venv made by `make rknn-tools` (5.6 GB, numpy <= 1.26); the
.tflite routes (the face detector of issue 12) need `make rknn-tools RKNN_TFLITE=1` (6.7 GB).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.models.registry import Registry
from appliance_tools.demo import stripes
from tests.test_rknn_gate import CALIBRATE, VERIFY, dark_noise, faces

VENV = os.environ.get("APPLIANCE_RKNN_VENV", "")

# Opt-in: deselected from `make test` by the `toolkit` marker; `make test-rknn` selects it.
pytestmark = pytest.mark.toolkit


@pytest.fixture(autouse=True)
def _toolkit_venv() -> None:
    if not VENV or not (Path(VENV) / "bin" / "python").exists():
        pytest.fail("needs the rknn-toolkit2 venv: run `make test-rknn` (it runs `make rknn-tools` first)")


# Runs in the toolkit venv: the stripes graph (conv VALID -> relu -> mean -> dense -> softmax) in ONNX.
BUILD_ONNX = """
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

weights = np.load(sys.argv[1])
filters = weights["filters"].transpose(0, 3, 1, 2)  # TFLite OHWI -> ONNX OIHW
size, channels = int(weights["size"]), filters.shape[1]
inits = [
    numpy_helper.from_array(filters.astype(np.float32), "filters"),
    numpy_helper.from_array(np.zeros(filters.shape[0], np.float32), "filters_bias"),
    numpy_helper.from_array(weights["dense"].astype(np.float32), "dense"),
    numpy_helper.from_array(weights["bias"].astype(np.float32), "dense_bias"),
]
nodes = [
    helper.make_node("Conv", ["image", "filters", "filters_bias"], ["gradient"], kernel_shape=[3, 3]),
    helper.make_node("Relu", ["gradient"], ["energy"]),
    helper.make_node("ReduceMean", ["energy"], ["pooled"], axes=[2, 3], keepdims=0),
    helper.make_node("Gemm", ["pooled", "dense", "dense_bias"], ["logits"], transB=1),
    helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
]
graph = helper.make_graph(
    nodes, "stripes",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, size, size])],
    [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, weights["dense"].shape[0]])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
model.ir_version = 7
onnx.checker.check_model(model)
onnx.save(model, sys.argv[2])
"""


def build_onnx(folder: Path) -> Path:
    weights, bias = stripes.head_weights()
    npz = folder / "weights.npz"
    np.savez(npz, filters=stripes.gradient_filters(), dense=weights, bias=bias, size=stripes.INPUT_SIZE)
    target = folder / "stripes.onnx"
    subprocess.run([str(Path(VENV) / "bin" / "python"), "-c", BUILD_ONNX, str(npz), str(target)], check=True)
    return target


def calibration(folder: Path, count: int = 60) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(count):
        rgb = stripes.make_sample(stripes.LABELS[i % len(stripes.LABELS)], rng)
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


@pytest.mark.parametrize("int8", [False, True])
def test_real_simulator_matches_litert(
    tmp_path: Path, data_dir: Path, registry: Registry, int8: bool
) -> None:
    source = build_onnx(tmp_path)
    calib = calibration(tmp_path / "calib")
    extra = ["--int8"] if int8 else []
    code = main(
        [
            "models",
            "convert",
            str(source),
            "--model",
            "stripes",
            "--calib",
            str(calib),
            "--samples",
            "30",
            "--venv",
            VENV,
            "--data-dir",
            str(data_dir),
            *extra,
        ]
    )
    report = registry.get("stripes").report or {}
    assert code == 0, report.get("problems")
    assert report["dtype"] == ("int8" if int8 else "fp16") and report["passed"] is True
    assert report["toolkit"] != "unknown"
    assert report["outputs"][0]["cosine"] > (0.99 if int8 else 0.9999)
    assert report["same_label"] >= (0.9 if int8 else 1.0)


def test_real_simulator_from_tflite(tmp_path: Path, data_dir: Path, registry: Registry) -> None:
    """The .tflite route needs TensorFlow <= 2.14 in the toolkit venv (make rknn-tools RKNN_TFLITE=1)."""
    probe = subprocess.run([str(Path(VENV) / "bin" / "python"), "-c", "import tensorflow"], check=False)
    if probe.returncode != 0:
        pytest.skip("the toolkit venv has no tensorflow: make rknn-tools RKNN_TFLITE=1")
    twin = registry.files_of(registry.get("stripes"))[".tflite"]
    calib = calibration(tmp_path / "calib")
    code = main(
        [
            "models",
            "convert",
            str(twin),
            "--model",
            "stripes",
            "--int8",
            "--calib",
            str(calib),
            "--samples",
            "30",
            "--venv",
            VENV,
            "--data-dir",
            str(data_dir),
        ]
    )
    report = registry.get("stripes").report or {}
    assert code == 0, report.get("problems")
    assert report["outputs"][0]["cosine"] > 0.99 and report["same_label"] >= 0.9


def _needs_tensorflow() -> None:
    probe = subprocess.run([str(Path(VENV) / "bin" / "python"), "-c", "import tensorflow"], check=False)
    if probe.returncode != 0:
        pytest.skip("the toolkit venv has no tensorflow: make rknn-tools RKNN_TFLITE=1")


def convert_face(data_dir: Path, registry: Registry, *args: str) -> tuple[int, dict[str, Any]]:
    twin = registry.files_of(registry.get("face"))[".tflite"]
    command = ["models", "convert", str(twin), "--model", "face", "--int8", "--venv", VENV]
    code = main([*command, "--data-dir", str(data_dir), *args])
    return code, registry.get("face").report or {}


def test_real_toolkit_refuses_the_noise_calibrated_face_model(
    tmp_path: Path, data_dir: Path, registry: Registry, astronaut: np.ndarray
) -> None:
    """Issue 12: calibrated on 20 dark-noise images the face model found 0 % of real faces."""
    _needs_tensorflow()
    active = registry.active()
    noise = dark_noise(tmp_path / "noise")
    code, report = convert_face(data_dir, registry, "--calib", str(noise), "--activate")
    assert code == 1 and any("the float model finds no box" in p for p in report["problems"]), report
    check = faces(tmp_path / "verify", astronaut, VERIFY)
    code, report = convert_face(
        data_dir, registry, "--calib", str(noise), "--verify", str(check), "--activate"
    )
    assert code == 1 and report["passed"] is False, report
    assert registry.active() == active


def test_real_toolkit_passes_a_sensible_face_calibration(
    tmp_path: Path, data_dir: Path, registry: Registry, astronaut: np.ndarray
) -> None:
    _needs_tensorflow()
    calib = faces(tmp_path / "calib", astronaut, CALIBRATE)
    check = faces(tmp_path / "verify", astronaut, VERIFY)
    code, report = convert_face(data_dir, registry, "--calib", str(calib), "--verify", str(check))
    assert code == 0, (report.get("problems"), report["outputs"])
    assert report["box_recall"] >= 0.9 and report["box_precision"] >= 0.9


@pytest.mark.parametrize("int8", [False, True])
def test_real_simulator_with_mean_and_std_folded_in(
    tmp_path: Path, data_dir: Path, registry: Registry, int8: bool
) -> None:
    """--uint8-input: config(mean_values, std_values); the simulator gets raw uint8 NHWC pixels and
    must still agree with LiteRT fed the float-normalised input."""
    source = build_onnx(tmp_path)
    calib = calibration(tmp_path / "calib")
    extra = ["--int8"] if int8 else []
    args = [str(source), "--model", "stripes", "--calib", str(calib), "--samples", "30", "--uint8-input"]
    code = main(["models", "convert", *args, "--venv", VENV, "--data-dir", str(data_dir), *extra])
    report = registry.get("stripes").report or {}
    assert code == 0, (report.get("problems"), report.get("outputs"))
    assert report["rknn"]["folded_input"] == {"mean": [0.0] * 3, "std": [255.0] * 3}
    assert report["outputs"][0]["cosine"] > (0.99 if int8 else 0.9999)
    assert report["same_label"] >= (0.9 if int8 else 1.0)


def test_real_simulator_folds_the_face_models_mean_and_std(
    tmp_path: Path, data_dir: Path, registry: Registry, astronaut: np.ndarray
) -> None:
    """mean 127.5 / std 127.5 folded in: raw uint8 faces on the simulator, boxes as the float model's."""
    _needs_tensorflow()
    twin = registry.files_of(registry.get("face"))[".tflite"]
    check = faces(tmp_path / "verify", astronaut, VERIFY)
    args = [str(twin), "--model", "face", "--verify", str(check), "--uint8-input", "--venv", VENV]
    code = main(["models", "convert", *args, "--data-dir", str(data_dir)])
    report = registry.get("face").report or {}
    assert code == 0, (report.get("problems"), report.get("outputs"))
    assert report["rknn"]["folded_input"] == {"mean": [127.5] * 3, "std": [127.5] * 3}
    assert report["box_recall"] >= 0.9 and report["box_precision"] >= 0.9
