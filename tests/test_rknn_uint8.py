"""The uint8 input path: `models convert --uint8-input` folds the manifest's mean/std into the .rknn,
the pipeline then feeds the NPU raw uint8 NHWC pixels (no float tensor, no normalisation on the CPU),
and a frame that fails over to the CPU gets the float twin's normalised input, so both routes give
the float model's answer. Runs the real worker script with the fake toolkit (tests/fakes/rknn) and
the real pipeline runtime on the fake NPU (tests/fakes/rknnlite)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from appliance.backends.registry import Backends
from appliance.models.manifest import InputSpec, Manifest
from appliance.models.registry import Registry
from appliance.pipeline.runtime import ModelRuntime, RuntimeOptions
from appliance.processing.image import Prepared, Preprocessor
from appliance.processing.inference import Inference
from appliance.sources.base import Frame
from appliance.tensorspec import TensorSpec
from tests.conftest import CACHE
from tests.fakes import fixtures
from tests.test_rknn_convert import convert, make_venv, stripe_images
from tests.test_rknn_pipeline import Running, samples

fake_npu = fixtures.fake_npu
rk3588 = fixtures.rk3588
npu_backends = fixtures.npu_backends


def converted(
    tmp_path: Path, data_dir: Path, registry: Registry, name: str, *flags: str
) -> tuple[Manifest, Manifest]:
    """(the float version, the new .rknn version) for registry model `name`."""
    base = registry.get(name)
    source = registry.files_of(base)[".tflite"]
    venv = make_venv(tmp_path / "venv-rknn")
    assert convert(data_dir, str(source), "--model", name, "--venv", str(venv), *flags) == 0
    return base, registry.get(name)


def runtime_of(
    registry: Registry, manifest: Manifest, order: tuple[str, ...], backends: Backends | None = None
) -> ModelRuntime:
    options = RuntimeOptions(order=order, threads=1, ring=2)
    return ModelRuntime(manifest, registry.files_of(manifest), options, backends or Backends.default())


def infer(runtime: ModelRuntime, image: np.ndarray) -> tuple[np.ndarray, Inference, str]:
    prepared, _ = runtime.prepare(Frame(1, 0.0, "test", image=image))
    fed = prepared.tensor.copy()
    outputs, label = runtime.invoke(0, prepared)
    return fed, runtime.finish(outputs, prepared.transform), label


def test_convert_records_the_folded_mean_and_std(tmp_path: Path, data_dir: Path, registry: Registry) -> None:
    base, made = converted(tmp_path, data_dir, registry, "face", "--uint8-input")
    rknn = (made.report or {})["rknn"]
    assert rknn["folded_input"] == {"mean": [127.5] * 3, "std": [127.5] * 3}
    assert made.input == base.input  # the float twin's normalisation, still used on the CPU
    assert (made.report or {})["passed"] is True
    _, plain = converted(tmp_path / "again", data_dir, registry, "face")
    assert "folded_input" not in (plain.report or {})["rknn"]  # without the flag: unchanged


def test_folded_model_gets_uint8_pixels_and_fails_over_to_the_same_answer(
    tmp_path: Path,
    data_dir: Path,
    registry: Registry,
    *,
    fake_npu: ModuleType,
    astronaut: np.ndarray,
    npu_backends: Backends,  # the fake NPU on an RK3588, rknn first in the order
) -> None:
    base, made = converted(tmp_path, data_dir, registry, "face", "--uint8-input")
    float_rt = runtime_of(registry, base, ("litert",))
    npu_rt = runtime_of(registry, made, ("rknn", "litert"), npu_backends)
    try:
        assert npu_rt.backend == "rknn"
        want_tensor, want, _ = infer(float_rt, astronaut)
        assert want_tensor.dtype == np.float32 and want.count > 0  # the float model finds the face
        fed, got, label = infer(npu_rt, astronaut)
        assert label.startswith("rknn:")
        assert fed.dtype == np.uint8 and fed.shape == (1, 128, 128, 3)  # raw NHWC pixels
        assert npu_rt.image_pre is not None and npu_rt.image_pre.raw
        assert npu_rt.image_pre._local.scratch.values.size == 0  # no float buffer on this route
        reached = fake_npu.NPU.last_inputs[0]
        assert reached.dtype == np.uint8 and reached.shape == (1, 128, 128, 3)
        np.testing.assert_array_equal(reached, fed)
        # the same pixels, normalised the manifest's way, are what the float model saw
        np.testing.assert_allclose((fed.astype(np.float32) - 127.5) / 127.5, want_tensor, atol=1e-6)
        assert_same(got, want)
        # a float tensor sent through the API (the twin's input, as /v2 describes it): back to pixels
        prepared, _ = npu_rt.prepare(Frame(2, 0.0, "api", tensor=want_tensor))
        assert prepared.tensor.dtype == np.uint8
        np.testing.assert_array_equal(prepared.tensor, fed)
        transform = prepared.transform
        assert_same(
            npu_rt.finish(npu_rt.invoke(0, prepared)[0], transform),
            float_rt.finish(float_rt.invoke(0, Prepared(want_tensor, transform))[0], transform),
        )
        fake_npu.NPU.none_after = 0  # the NPU fails: this frame runs on the float twin on the CPU
        _, fallback, label = infer(npu_rt, astronaut)
        assert label.startswith("litert:fallback")
        assert_same(fallback, want)
    finally:
        float_rt.close()
        npu_rt.close()


def test_without_the_npu_the_folded_version_is_normalised_on_the_cpu(
    tmp_path: Path, data_dir: Path, registry: Registry, astronaut: np.ndarray
) -> None:
    """No rknnlite at all: the version runs on LiteRT, which needs the manifest's float input."""
    base, made = converted(tmp_path, data_dir, registry, "face", "--uint8-input")
    float_rt, cpu_rt = runtime_of(registry, base, ("litert",)), runtime_of(registry, made, ("rknn", "litert"))
    try:
        assert cpu_rt.backend == "litert"
        fed, got, _ = infer(cpu_rt, astronaut)
        assert fed.dtype == np.float32
        assert_same(got, infer(float_rt, astronaut)[1])
    finally:
        float_rt.close()
        cpu_rt.close()


def test_int8_with_uint8_input_calibrates_on_raw_pixels(
    tmp_path: Path, data_dir: Path, registry: Registry
) -> None:
    calib = stripe_images(tmp_path / "calib", count=12)
    flags = ("--int8", "--calib", str(calib), "--uint8-input")
    _, made = converted(tmp_path, data_dir, registry, "stripes", *flags)
    report = made.report or {}
    assert report["rknn"]["folded_input"] == {"mean": [0.0] * 3, "std": [255.0] * 3}
    assert report["passed"] is True and report["same_label"] == 1.0


def test_uint8_input_is_refused_for_a_model_without_a_float_image_input(
    tmp_path: Path, data_dir: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    venv = make_venv(tmp_path / "venv-rknn")
    uint8 = CACHE / "models" / "stripes_uint8.tflite"  # already takes uint8: nothing to fold
    code = convert(data_dir, str(uint8), "--model", "stripes", "--venv", str(venv), "--uint8-input")
    assert code == 1
    assert "--uint8-input" in capsys.readouterr().err


def assert_same(got: Inference, want: Inference) -> None:
    assert got.count == want.count
    for a, b in zip(got.detections, want.detections, strict=True):
        assert a.label == b.label
        assert a.score == pytest.approx(b.score, abs=1e-3)
        np.testing.assert_allclose(a.box, b.box, atol=0.5)


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_raw_preprocessing_is_the_float_preprocessing_before_normalising(
    layout: str, astronaut: np.ndarray
) -> None:
    shape = (1, 32, 48, 3) if layout == "nhwc" else (1, 3, 32, 48)
    options = InputSpec(layout=layout, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0), resize="letterbox")
    normalised, _ = Preprocessor(TensorSpec("x", shape, "float32"), options, ring=1)(astronaut)
    raw_options = InputSpec(layout=layout, mean=(0.0,), std=(1.0,), resize="letterbox")
    raw_pre = Preprocessor(TensorSpec("x", shape, "uint8"), raw_options, ring=1)
    pixels, _ = raw_pre(astronaut)
    assert raw_pre.raw and pixels.dtype == np.uint8 and pixels.shape == shape
    channel = (None, slice(None), None, None) if layout == "nchw" else (None, None, None, slice(None))
    mean, std = np.array([10.0, 20.0, 30.0])[channel], np.array([2.0, 4.0, 8.0])[channel]
    np.testing.assert_allclose((pixels - mean) / std, normalised, atol=1e-5)


def test_the_pipeline_runs_a_folded_version_on_every_core_and_after_the_npu_dies(
    tmp_path: Path, data_dir: Path, registry: Registry, fake_npu: ModuleType, npu_backends: Backends
) -> None:
    """Activation (proved on a stand-in frame), three per-core workers, then the device dying."""
    _, made = converted(tmp_path, data_dir, registry, "stripes", "--uint8-input")
    app = Running(registry, made, 3, npu_backends)
    try:
        images = samples(30)
        fake_npu.NPU.none_after = fake_npu.NPU.inferences + 15
        results = app.run(images)
        assert [r.seq for r in app.published] == list(range(1, 31))
        assert sum(r.backend.startswith("rknn:core") for r in results) == 15
        assert results[-1].backend.startswith("litert:fallback")
        assert all(r.label == label for r, (label, _) in zip(results, images, strict=True))
        assert all(a.dtype == np.uint8 for a in fake_npu.NPU.last_inputs)
    finally:
        app.stop()
