"""The fake's vendor behaviours, each exercised through the backend (tests/fakes/README.md lists them
with their sources): raw integer outputs, NCHW outputs of ONNX models, the .rknn's own input settings,
pass-through input, and the declared input layout."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from appliance.backends.base import BackendOptions, Context
from appliance.backends.failover import Deadline
from appliance.backends.litert import LiteRTBackend
from appliance.backends.rknn import NPUModel, NPUSettings, RKNNBackend, Slot, open_runtime
from appliance.backends.rknnio import OutputAttr, OutputConverter
from appliance.errors import InferenceFailed, ModelRejected
from appliance.platform import ProbeSources
from appliance.tensorspec import TensorSpec
from tests.conftest import CACHE
from tests.fakes import fixtures
from tests.fakes.models import write_manifest, write_pair

fake_npu = fixtures.fake_npu
rk3588 = fixtures.rk3588

STRIPES = CACHE / "models" / "stripes.tflite"
STRIPES_UINT8 = CACHE / "models" / "stripes_uint8.tflite"
SELFIE = CACHE / "models" / "selfie_segmentation.tflite"
RAW_UINT8 = {"dtype": "uint8", "scale": 1 / 255, "zero_point": 0}


def open_one(model: Path, sources: ProbeSources) -> Context:
    settings = NPUSettings(core_policy="per-core", platform=sources, deadline=Deadline(fixed_s=30.0))
    return RKNNBackend(settings).open(model, BackendOptions(threads=1, contexts=1))[0]


def on_cpu(model: Path, tensor: np.ndarray) -> list[np.ndarray]:
    context = LiteRTBackend().open(model, BackendOptions(threads=1, contexts=1))[0]
    try:
        return context.run([tensor])
    finally:
        context.close()


def pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_raw_uint8_outputs_are_dequantised_with_the_declared_attributes(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    model = write_pair(tmp_path / "v", STRIPES, outputs=[RAW_UINT8])
    write_manifest(model.parent, outputs=[RAW_UINT8])
    tensor = pixels((1, 64, 64, 3)).astype(np.float32) / 255
    context = open_one(model, rk3588)
    outputs = context.run([tensor])
    assert context.label == "rknn:core0" and outputs[0].dtype == np.float32
    np.testing.assert_allclose(outputs[0], on_cpu(STRIPES, tensor)[0], atol=1 / 255)
    context.close()


def test_raw_output_without_attributes_is_refused_not_guessed(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    from rknnlite.api import RKNNLite  # noqa: PLC0415 the fake, on sys.path only under `fake_npu`

    model = write_pair(tmp_path / "v", STRIPES, outputs=[RAW_UINT8])  # no manifest, float twin
    context = open_runtime(RKNNLite, NPUModel.of(model), Slot("rknn:core0", 1))
    with pytest.raises(InferenceFailed, match="raw uint8 and neither the manifest"):
        context.run([np.zeros((1, 64, 64, 3), np.float32)])
    context.close()


def test_quantised_twin_gives_the_scale_of_raw_outputs(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    twin = LiteRTBackend().open(STRIPES_UINT8, BackendOptions(1, 1))[0]
    spec = twin.outputs[0]
    twin.close()
    attr = OutputAttr(spec.dtype, spec.scale, spec.zero_point).to_json()
    model = write_pair(tmp_path / "q", STRIPES_UINT8, outputs=[attr])  # as the simulator returned it
    tensor = pixels((1, 64, 64, 3), 3)
    context = open_one(model, rk3588)
    got = context.run([tensor])[0]
    want = (on_cpu(STRIPES_UINT8, tensor)[0].astype(np.float32) - spec.zero_point) * spec.scale
    np.testing.assert_allclose(got, want, atol=1e-6)
    context.close()


def test_onnx_models_give_nchw_outputs_turned_back_to_the_twin_layout(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    from rknnlite.api import RKNNLite  # noqa: PLC0415 the fake, on sys.path only under `fake_npu`

    model = write_pair(tmp_path / "s", SELFIE, source="onnx")
    tensor = pixels((1, 256, 256, 3), 5).astype(np.float32) / 255
    runtime = RKNNLite()
    assert runtime.load_rknn(str(model)) == 0 and runtime.init_runtime(core_mask=1) == 0
    raw = runtime.inference(inputs=[tensor], data_format="nhwc")
    assert raw is not None and raw[0].shape == (1, 1, 256, 256)  # what the real runtime returns
    runtime.release()
    context = open_one(model, rk3588)
    got = context.run([tensor])[0]
    assert got.shape == (1, 256, 256, 1)
    np.testing.assert_allclose(got, on_cpu(SELFIE, tensor)[0], atol=1e-5)
    context.close()


def test_the_rknn_files_own_input_settings_apply(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    """mean/std folded into the .rknn: the pipeline feeds raw uint8, no float normalisation on the CPU."""
    folded = {"mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0]}
    model = write_pair(tmp_path / "f", STRIPES, inputs=[folded])
    write_manifest(model.parent, folded_input=folded)
    context = open_one(model, rk3588)
    assert context.inputs[0].dtype == "uint8"  # the preprocessor then stops at uint8 pixels
    frame = pixels((1, 64, 64, 3), 7)
    want = on_cpu(STRIPES, frame.astype(np.float32) / 255)[0]
    np.testing.assert_allclose(context.run([frame])[0], want, atol=1e-5)
    assert fake_npu.NPU.last_inputs[0].dtype == np.uint8  # what reached the runtime
    fake_npu.NPU.none_after = 0  # the CPU fallback gets the same frame, normalised there
    np.testing.assert_allclose(context.run([frame])[0], want, atol=1e-5)
    assert context.label.startswith("litert:fallback")
    context.close()
    data = json.loads((model.parent / "manifest.json").read_text())
    data["input"].update(mean=[0.0], std=[255.0])  # the float twin's own numbers: the same, accepted
    (model.parent / "manifest.json").write_text(json.dumps(data))
    assert NPUModel.of(model).declared.folded is not None
    data["input"].update(mean=[127.5], std=[127.5])  # the CPU fallback would see other numbers: refused
    (model.parent / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelRejected, match="not be normalised the same"):
        NPUModel.of(model)


def test_pass_through_and_the_declared_layout_reach_the_runtime(
    tmp_path: Path, fake_npu: ModuleType, rk3588: ProbeSources
) -> None:
    model = write_pair(tmp_path / "p", STRIPES_UINT8)
    write_manifest(model.parent, layout="nhwc", pass_through=True)
    context = open_one(model, rk3588)
    tensor = pixels((1, 64, 64, 3), 9)
    context.run([tensor])
    assert fake_npu.NPU.last_pass_through == [1] and fake_npu.NPU.last_format == "nhwc"
    context.close()


def test_wrong_output_shape_names_the_output(tmp_path: Path, fake_npu: ModuleType) -> None:
    convert = OutputConverter("rknn:core0", (TensorSpec("probs", (1, 4), "float32"),), ())
    with pytest.raises(InferenceFailed, match=r"output 0 \(probs\) came back with shape \(1, 5\)"):
        convert([np.zeros((1, 5), np.float32)])
