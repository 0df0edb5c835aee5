"""The self-built demo models: the TFLite writer, the stripes image classifier and the vibration classifier.

Every model is loaded and run with the real LiteRT interpreter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from appliance_tools.demo import stripes, vibration
from appliance_tools.demo.tflite_builder import (
    Activation,
    ConvParams,
    DenseParams,
    DType,
    GraphBuilder,
    Padding,
    Quantization,
    Tensor,
)

FRESH_SEED = 31_337  # differs from every seed used while building
FRESH_SAMPLES = 300
STRIPES_MIN_ACCURACY = 0.98
UINT8_MIN_AGREEMENT = 0.98
UINT8_PROBABILITY_TOLERANCE = 2.0 / 256.0
VIBRATION_MIN_ACCURACY = 0.97
FLOAT_TOLERANCE = 1e-5

Array = npt.NDArray[Any]


class Runner:
    """A LiteRT interpreter over model bytes with a single input."""

    def __init__(self, model: bytes) -> None:
        self.interpreter = Interpreter(model_content=model)
        self.interpreter.allocate_tensors()
        self.inputs: list[dict[str, Any]] = self.interpreter.get_input_details()
        self.outputs: list[dict[str, Any]] = self.interpreter.get_output_details()

    def run_all(self, *values: Array) -> list[Array]:
        for detail, value in zip(self.inputs, values, strict=True):
            self.interpreter.set_tensor(detail["index"], value)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(detail["index"]).copy() for detail in self.outputs]

    def run(self, value: Array) -> Array:
        return self.run_all(value)[0]


@pytest.fixture(scope="module")
def stripes_float() -> Runner:
    return Runner(stripes.build_stripes_model())


@pytest.fixture(scope="module")
def stripes_uint8() -> Runner:
    return Runner(stripes.build_stripes_model_uint8())


@pytest.fixture(scope="module")
def vibration_model() -> Runner:
    return Runner(vibration.build_vibration_model())


# --------------------------------------------------------------- numpy references
def conv2d_reference(x: Array, weights: Array, bias: Array, params: ConvParams) -> Array:
    """NHWC x OHWI convolution with TFLite's SAME / VALID padding rules."""
    stride_h, stride_w = params.stride
    _, height, width, _ = x.shape
    _, kernel_h, kernel_w, _ = weights.shape
    if params.padding is Padding.SAME:
        out_h, out_w = math.ceil(height / stride_h), math.ceil(width / stride_w)
        pad_h = max((out_h - 1) * stride_h + kernel_h - height, 0)
        pad_w = max((out_w - 1) * stride_w + kernel_w - width, 0)
        x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    else:
        out_h = math.ceil((height - kernel_h + 1) / stride_h)
        out_w = math.ceil((width - kernel_w + 1) / stride_w)
    out = np.zeros((x.shape[0], out_h, out_w, weights.shape[0]))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride_h : i * stride_h + kernel_h, j * stride_w : j * stride_w + kernel_w, :]
            out[:, i, j, :] = np.einsum("nhwc,ohwc->no", patch, weights)
    out += bias
    return np.maximum(out, 0.0) if params.activation is Activation.RELU else out


def softmax_reference(logits: Array) -> Array:
    exp: Array = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities: Array = exp / exp.sum(axis=-1, keepdims=True)
    return probabilities


# ------------------------------------------------------------------ GraphBuilder
def _unary_graph(shape: tuple[int, ...], op: Callable[[GraphBuilder, Tensor], Tensor]) -> Runner:
    builder = GraphBuilder()
    builder.mark_outputs(op(builder, builder.add_input("x", shape)))
    return Runner(builder.to_bytes())


@pytest.mark.parametrize(
    "params",
    [
        ConvParams(),
        ConvParams(padding=Padding.VALID),
        ConvParams(stride=(2, 2), activation=Activation.RELU),
        ConvParams(stride=(2, 1), padding=Padding.VALID, activation=Activation.RELU),
    ],
)
def test_conv_2d_matches_numpy(params: ConvParams) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 9, 8, 3)).astype(np.float32)
    weights = rng.normal(size=(5, 3, 3, 3)).astype(np.float32)
    bias = rng.normal(size=5).astype(np.float32)

    def conv(builder: GraphBuilder, t: Tensor) -> Tensor:
        w, b = builder.add_constant("w", weights), builder.add_constant("b", bias)
        return builder.conv_2d(t, w, b, params)

    got = _unary_graph(x.shape, conv).run(x)
    np.testing.assert_allclose(got, conv2d_reference(x, weights, bias, params), atol=FLOAT_TOLERANCE)


def test_conv_2d_without_bias_gets_a_zero_bias() -> None:
    x = np.random.default_rng(2).normal(size=(1, 5, 5, 2)).astype(np.float32)
    weights = np.ones((1, 3, 3, 2), dtype=np.float32)
    got = _unary_graph(x.shape, lambda b, t: b.conv_2d(t, b.add_constant("w", weights))).run(x)
    np.testing.assert_allclose(
        got, conv2d_reference(x, weights, np.zeros(1), ConvParams()), atol=FLOAT_TOLERANCE
    )


@pytest.mark.parametrize(("with_bias", "activation"), [(True, Activation.NONE), (False, Activation.RELU)])
def test_fully_connected_matches_numpy(with_bias: bool, activation: Activation) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6)).astype(np.float32)
    weights = rng.normal(size=(4, 6)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32) if with_bias else np.zeros(4, dtype=np.float32)

    def dense(builder: GraphBuilder, t: Tensor) -> Tensor:
        b = builder.add_constant("b", bias) if with_bias else None
        return builder.fully_connected(t, builder.add_constant("w", weights), b, DenseParams(activation))

    expected = x @ weights.T + bias
    if activation is Activation.RELU:
        expected = np.maximum(expected, 0.0)
    np.testing.assert_allclose(_unary_graph(x.shape, dense).run(x), expected, atol=FLOAT_TOLERANCE)


@pytest.mark.parametrize(("axes", "keep_dims"), [((1, 2), False), ((1,), True), ((-1,), False)])
def test_mean_matches_numpy(axes: tuple[int, ...], keep_dims: bool) -> None:
    x = np.random.default_rng(4).normal(size=(1, 4, 5, 3)).astype(np.float32)
    got = _unary_graph(x.shape, lambda b, t: b.mean(t, axes, keep_dims)).run(x)
    np.testing.assert_allclose(got, x.mean(axis=axes, keepdims=keep_dims), atol=FLOAT_TOLERANCE)


@pytest.mark.parametrize(
    ("op", "reference"),
    [
        (lambda b, t: b.relu(t), lambda x: np.maximum(x, 0.0)),
        (lambda b, t: b.abs(t), np.abs),
        (lambda b, t: b.log(b.abs(t)), lambda x: np.log(np.abs(x))),
        (lambda b, t: b.softmax(t), softmax_reference),
        (lambda b, t: b.softmax(t, beta=2.0), lambda x: softmax_reference(2.0 * x)),
        (lambda b, t: b.reshape(t, (2, -1)), lambda x: x.reshape(2, -1)),
    ],
    ids=["relu", "abs", "log", "softmax", "softmax_beta", "reshape"],
)
def test_unary_ops_match_numpy(
    op: Callable[[GraphBuilder, Tensor], Tensor], reference: Callable[[Array], Array]
) -> None:
    x = np.random.default_rng(5).normal(size=(1, 3, 4)).astype(np.float32)
    got = _unary_graph(x.shape, op).run(x)
    np.testing.assert_allclose(got, reference(x), rtol=FLOAT_TOLERANCE, atol=FLOAT_TOLERANCE)


@pytest.mark.parametrize(("name", "reference"), [("add", np.add), ("sub", np.subtract), ("mul", np.multiply)])
def test_binary_ops_broadcast_like_numpy(name: str, reference: Callable[[Array, Array], Array]) -> None:
    rng = np.random.default_rng(6)
    a = rng.normal(size=(1, 4, 3)).astype(np.float32)
    b = rng.normal(size=(1, 1, 3)).astype(np.float32)
    builder = GraphBuilder()
    x, y = builder.add_input("a", a.shape), builder.add_input("b", b.shape)
    builder.mark_outputs(getattr(builder, name)(x, y, name="out"))
    (got,) = Runner(builder.to_bytes()).run_all(a, b)
    assert got.shape == (1, 4, 3)
    np.testing.assert_allclose(got, reference(a, b), atol=FLOAT_TOLERANCE)


@pytest.mark.parametrize(("dtype", "zero_point"), [(DType.UINT8, 128), (DType.INT8, -3)])
def test_quantize_and_dequantize(dtype: DType, zero_point: int) -> None:
    scale = 0.05
    x = np.linspace(-3.0, 3.0, 24, dtype=np.float32).reshape(1, 24)
    builder = GraphBuilder()
    quantized = builder.quantize(
        builder.add_input("x", x.shape), dtype, Quantization(scale, zero_point), name="q"
    )
    builder.mark_outputs(quantized, builder.dequantize(quantized, name="dq"))
    runner = Runner(builder.to_bytes())
    assert runner.outputs[0]["dtype"] == dtype.numpy_dtype
    assert runner.outputs[0]["quantization"] == pytest.approx((scale, zero_point))
    q, dq = runner.run_all(x)
    info = np.iinfo(dtype.numpy_dtype)
    expected = np.clip(np.round(x / scale) + zero_point, info.min, info.max)
    np.testing.assert_array_equal(q, expected.astype(dtype.numpy_dtype))
    np.testing.assert_allclose(dq, (expected - zero_point) * scale, atol=FLOAT_TOLERANCE)


def test_quantized_uint8_conv_is_close_to_float() -> None:
    rng = np.random.default_rng(7)
    x_q = rng.integers(0, 256, size=(1, 6, 6, 2), dtype=np.uint8)
    in_q, w_q, out_q = Quantization(1 / 255, 0), Quantization(0.01, 128), Quantization(0.02, 100)
    weights_q = rng.integers(100, 156, size=(3, 3, 3, 2), dtype=np.uint8)
    builder = GraphBuilder()
    x = builder.add_input("x", x_q.shape, DType.UINT8, in_q)
    w = builder.add_constant("w", weights_q, w_q)
    builder.mark_outputs(builder.conv_2d(x, w, params=ConvParams(quantization=out_q), name="y"))
    got = (Runner(builder.to_bytes()).run(x_q).astype(np.float64) - out_q.zero_point) * out_q.scale
    weights = (weights_q.astype(np.float64) - w_q.zero_point) * w_q.scale
    expected = conv2d_reference(x_q * in_q.scale, weights, np.zeros(3), ConvParams())
    np.testing.assert_allclose(got, np.clip(expected, -100 * 0.02, 155 * 0.02), atol=out_q.scale)


def test_flatbuffer_layout_and_signature() -> None:
    model = stripes.build_stripes_model()
    assert model[4:8] == b"TFL3"
    root = schema.Model.GetRootAs(model, 0)
    assert root.Version() == 3
    assert root.Buffers(0).DataLength() == 0
    assert root.SubgraphsLength() == 1
    runner = Runner(model)
    assert runner.interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["image"], "outputs": ["probabilities"]}
    }


class Fresh:
    """A new graph with a float32 input `x` [1, 8, 8, 3], for misuse cases."""

    UINT8 = Quantization(0.1, 0)

    def __init__(self) -> None:
        self.b = GraphBuilder()
        self.x = self.b.add_input("x", (1, 8, 8, 3))

    def const(
        self, shape: tuple[int, ...], dtype: type = np.float32, quant: Quantization | None = None
    ) -> Tensor:
        return self.b.add_constant(f"c{len(shape)}{dtype.__name__}", np.zeros(shape, dtype=dtype), quant)

    @property
    def flat(self) -> Tensor:
        return self.b.reshape(self.x, (1, -1))


MISUSES: list[tuple[Callable[[Fresh], object], str]] = [
    (
        lambda g: g.b.conv_2d(g.x, g.const((2, 3, 3, 4))),
        r"conv_2d: input has 3 channels, the filter expects 4",
    ),
    (
        lambda g: g.b.conv_2d(g.x, g.const((2, 9, 9, 3)), params=ConvParams(padding=Padding.VALID)),
        r"conv_2d: filter \(2, 9, 9, 3\) does not fit input \(1, 8, 8, 3\)",
    ),
    (
        lambda g: g.b.conv_2d(g.x, g.const((2, 3, 3, 3)), params=ConvParams(stride=(0, 1))),
        r"conv_2d: strides must be > 0",
    ),
    (lambda g: g.b.conv_2d(g.flat, g.const((2, 3, 3, 3))), r"conv_2d: input \(1, 192\) .* must both be 4-D"),
    (
        lambda g: g.b.conv_2d(g.x, g.const((2, 3, 3, 3), np.int32)),
        r"conv_2d: a float32 input needs float32 weights",
    ),
    (
        lambda g: g.b.fully_connected(g.flat, g.const((3, 5))),
        r"fully_connected: weights \(3, 5\) must be \[units, 192\]",
    ),
    (
        lambda g: g.b.fully_connected(g.flat, g.const((3, 192)), g.const((4,))),
        r"fully_connected: bias must be float32 of shape \(3,\), got \(4,\)",
    ),
    (
        lambda g: g.b.reshape(g.x, (1, 100)),
        r"reshape: cannot reshape \(1, 8, 8, 3\) \(192 elements\) to \(1, 100\)",
    ),
    (lambda g: g.b.mean(g.x, (4,)), r"mean: axes \(4,\) are not distinct valid axes of a rank-4 input"),
    (lambda g: g.b.mean(g.x, (1, -3)), r"mean: axes \(1, -3\) are not distinct"),
    (
        lambda g: g.b.add(g.x, g.const((1, 8, 8, 2))),
        r"add: shapes \(1, 8, 8, 3\) and \(1, 8, 8, 2\) do not broadcast",
    ),
    (lambda g: g.b.mul(g.x, g.const((1,), np.int32)), r"mul: operand dtypes differ \(float32 vs int32\)"),
    (
        lambda g: g.b.add_constant("c", np.zeros(3)),
        r"constant 'c': dtype float64 is not one of float32, uint8",
    ),
    (lambda g: g.b.add_input("x", (1, 2)), r"tensor name 'x' is already used"),
    (lambda g: g.b.add_input("y", (1, 0)), r"tensor 'y': every dimension must be > 0"),
    (lambda g: g.b.add_input("u", (1, 2), DType.UINT8), r"tensor 'u': uint8 tensors need a quantization"),
    (lambda g: Quantization(0.0), r"quantization scale must be finite and > 0"),
    (
        lambda g: g.b.conv_2d(
            g.b.quantize(g.x, DType.UINT8, g.UINT8), g.const((1, 1, 1, 3), np.uint8, g.UINT8)
        ),
        r"conv_2d: a uint8 input needs an output quantization",
    ),
    (
        lambda g: g.b.add(g.x, g.x, quant=g.UINT8),
        r"add: a float32 output takes no quantization",
    ),
    (lambda g: g.b.dequantize(g.x), r"dequantize: input must be uint8 or int8, got float32"),
    (lambda g: g.b.quantize(g.x, DType.INT32, g.UINT8), r"quantize: cannot quantize float32 to int32"),
    (lambda g: GraphBuilder().relu(g.x), r"relu: tensor 'x' belongs to another graph"),
    (lambda g: g.b.mark_outputs(), r"mark_outputs: at least one output tensor is needed"),
    (
        lambda g: (g.b.relu(g.x), g.b.to_bytes()),
        r"to_bytes: the graph needs an input, an operator and marked outputs",
    ),
]


@pytest.mark.parametrize(("misuse", "message"), MISUSES)
def test_invalid_use_raises_clear_value_error(misuse: Callable[[Fresh], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        misuse(Fresh())


# ------------------------------------------------------------------------ stripes
def _fresh_stripes() -> list[tuple[str, Array]]:
    rng = np.random.default_rng(FRESH_SEED)
    return [(label, stripes.make_sample(label, rng)) for label in stripes.LABELS * (FRESH_SAMPLES // 3)]


def test_stripes_tensor_specs(stripes_float: Runner, stripes_uint8: Runner) -> None:
    (inp,), (out,) = stripes_float.inputs, stripes_float.outputs
    assert (inp["name"], list(inp["shape"]), inp["dtype"]) == ("image", [1, 64, 64, 3], np.float32)
    assert (out["name"], list(out["shape"]), out["dtype"]) == ("probabilities", [1, 3], np.float32)
    (inp_q,), (out_q,) = stripes_uint8.inputs, stripes_uint8.outputs
    assert (inp_q["name"], list(inp_q["shape"]), inp_q["dtype"]) == ("image", [1, 64, 64, 3], np.uint8)
    assert inp_q["quantization"] == pytest.approx((1 / 255, 0))
    assert (out_q["name"], list(out_q["shape"]), out_q["dtype"]) == ("probabilities", [1, 3], np.uint8)
    assert out_q["quantization"] == pytest.approx((1 / 256, 0))


def test_stripes_float_accuracy_on_fresh_samples(stripes_float: Runner) -> None:
    samples = _fresh_stripes()
    correct = sum(
        stripes.LABELS[int(np.argmax(stripes_float.run(stripes.normalise(image))))] == label
        for label, image in samples
    )
    assert correct / len(samples) >= STRIPES_MIN_ACCURACY, f"accuracy {correct}/{len(samples)}"


def test_stripes_uint8_agrees_with_float(stripes_float: Runner, stripes_uint8: Runner) -> None:
    agree, worst = 0, 0.0
    samples = _fresh_stripes()
    for _, image in samples:
        expected = stripes_float.run(stripes.normalise(image))[0]
        got = stripes_uint8.run(image[np.newaxis])[0].astype(np.float32) / 256.0
        agree += int(np.argmax(got) == np.argmax(expected))
        worst = max(worst, float(np.abs(got - expected).max()))
    assert agree / len(samples) >= UINT8_MIN_AGREEMENT
    assert worst <= UINT8_PROBABILITY_TOLERANCE, f"worst probability difference {worst * 256:.2f}/256"


def _striped(
    period: int, colours: tuple[tuple[int, int, int], tuple[int, int, int]], vertical: bool
) -> Array:
    first = (np.arange(64) % period) < period // 2
    image = np.empty((64, 64, 3), dtype=np.uint8)
    image[first], image[~first] = colours
    return image.transpose(1, 0, 2).copy() if vertical else image


BLACK_WHITE = ((0, 0, 0), (255, 255, 255))
RED_GREEN = ((200, 40, 40), (40, 160, 40))  # about the same brightness: colour contrast only


def _scratch(vertical: bool) -> Array:
    image = np.full((64, 64, 3), 150, dtype=np.uint8)
    image[30] = 90
    return image.transpose(1, 0, 2).copy() if vertical else image


HANDMADE = [
    ("blank", np.full((64, 64, 3), 128, dtype=np.uint8)),
    ("blank", np.zeros((64, 64, 3), dtype=np.uint8)),
    ("blank", np.full((64, 64, 3), (30, 200, 90), dtype=np.uint8)),
    *[("horizontal_stripes", _striped(p, BLACK_WHITE, False)) for p in (2, 4, 8, 16, 32)],
    *[("vertical_stripes", _striped(p, BLACK_WHITE, True)) for p in (2, 4, 8, 16, 32)],
    ("horizontal_stripes", _striped(8, RED_GREEN, False)),
    ("vertical_stripes", _striped(6, RED_GREEN, True)),
    ("horizontal_stripes", _scratch(False)),
    ("vertical_stripes", _scratch(True)),
]


@pytest.mark.parametrize(("label", "image"), HANDMADE)
def test_stripes_handmade_examples(
    stripes_float: Runner, stripes_uint8: Runner, label: str, image: Array
) -> None:
    probabilities = stripes_float.run(stripes.normalise(image))[0]
    assert stripes.LABELS[int(np.argmax(probabilities))] == label, probabilities
    assert stripes.LABELS[int(np.argmax(stripes_uint8.run(image[np.newaxis])[0]))] == label


def test_stripes_graph_matches_numpy_reference(stripes_float: Runner) -> None:
    rng = np.random.default_rng(FRESH_SEED + 1)
    images = np.stack([stripes.normalise(stripes.make_sample(label, rng))[0] for label in stripes.LABELS])
    weights, bias = stripes.head_weights()
    expected = softmax_reference(stripes.gradient_features(images) @ weights.T + bias)
    got = np.concatenate([stripes_float.run(image[np.newaxis]) for image in images])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_make_sample_is_varied_and_seeded() -> None:
    first = [stripes.make_sample("vertical_stripes", np.random.default_rng(5)) for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    rng = np.random.default_rng(6)
    images = [stripes.make_sample(label, rng) for label in stripes.LABELS for _ in range(5)]
    assert all(image.shape == (64, 64, 3) and image.dtype == np.uint8 for image in images)
    assert len({image.tobytes() for image in images}) == len(images)
    assert len({tuple(image.reshape(-1, 3).mean(axis=0).round()) for image in images}) == len(images)
    assert stripes.make_sample("blank", rng, size=32).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="unknown label 'diagonal'"):
        stripes.make_sample("diagonal", rng)


def test_stripes_write_models(tmp_path: Path) -> None:
    paths = stripes.write_models(tmp_path / "models")
    assert {p.name for p in paths.values()} == {
        "stripes.tflite",
        "stripes_uint8.tflite",
        "stripes.labels.txt",
    }
    assert paths["model"].read_bytes() == stripes.build_stripes_model()
    assert paths["model_uint8"].read_bytes() == stripes.build_stripes_model_uint8()
    assert paths["labels"].read_text(encoding="utf-8").splitlines() == list(stripes.LABELS)


# ---------------------------------------------------------------------- vibration
def test_vibration_tensor_specs(vibration_model: Runner) -> None:
    (inp,), (out,) = vibration_model.inputs, vibration_model.outputs
    assert (inp["name"], list(inp["shape"]), inp["dtype"]) == ("window", [1, 128, 3], np.float32)
    assert (out["name"], list(out["shape"]), out["dtype"]) == ("probabilities", [1, 3], np.float32)
    assert vibration.LABELS == ("idle", "normal", "fault")


def _fresh_windows() -> list[tuple[str, Array]]:
    rng = np.random.default_rng(FRESH_SEED)
    return [(label, vibration.make_window(label, rng)) for label in vibration.LABELS * (FRESH_SAMPLES // 3)]


def test_vibration_accuracy_on_fresh_windows(vibration_model: Runner) -> None:
    windows = _fresh_windows()
    correct = sum(
        vibration.LABELS[int(np.argmax(vibration_model.run(window[np.newaxis])))] == label
        for label, window in windows
    )
    assert correct / len(windows) >= VIBRATION_MIN_ACCURACY, f"accuracy {correct}/{len(windows)}"


def test_vibration_ignores_gravity_and_sensor_offset(vibration_model: Runner) -> None:
    gravity = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    for _, window in _fresh_windows()[:30]:
        level = vibration_model.run(window[np.newaxis])
        tilted = vibration_model.run((window + gravity)[np.newaxis])
        np.testing.assert_allclose(tilted, level, atol=1e-4)


def test_vibration_graph_matches_numpy_reference(vibration_model: Runner) -> None:
    windows = np.stack([window for _, window in _fresh_windows()[:9]])
    features, labels = vibration.training_set(0)
    weights, bias = vibration.fit_softmax_regression(features, labels)
    expected = softmax_reference(vibration.window_features(windows) @ weights.T + bias)
    got = np.concatenate([vibration_model.run(window[np.newaxis]) for window in windows])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def _rms_and_peak(window: Array) -> tuple[float, float]:
    magnitude = np.linalg.norm(window - window.mean(axis=0), axis=1)
    return float(np.sqrt(np.mean(magnitude**2))), float(magnitude.max())


@pytest.mark.parametrize(
    ("label", "rms_range", "peak_range"),
    [
        ("idle", (0.005, 0.03), (0.0, 0.1)),
        ("normal", (0.1, 0.4), (0.2, 0.7)),
        ("fault", (0.2, 2.0), (0.7, 4.0)),
    ],
)
def test_make_window_matches_the_described_classes(
    label: str, rms_range: tuple[float, float], peak_range: tuple[float, float]
) -> None:
    """Motion magnitude in g, offset removed: idle ~ 0.01 g noise, normal 0.2-0.5 g, fault >= 0.8 g."""
    rng = np.random.default_rng(FRESH_SEED)
    for _ in range(50):
        window = vibration.make_window(label, rng)
        assert window.shape == (128, 3) and window.dtype == np.float32
        rms, peak = _rms_and_peak(window)
        assert rms_range[0] <= rms <= rms_range[1] and peak_range[0] <= peak <= peak_range[1], (rms, peak)


def test_make_window_is_seeded_and_checks_its_label() -> None:
    first, second = (vibration.make_window("fault", np.random.default_rng(9)) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="unknown label 'broken'"):
        vibration.make_window("broken", np.random.default_rng(9))


def test_vibration_write_model(tmp_path: Path) -> None:
    paths = vibration.write_model(tmp_path)
    assert {p.name for p in paths.values()} == {"vibration.tflite", "vibration.labels.txt"}
    assert paths["model"].read_bytes() == vibration.build_vibration_model()
    assert paths["labels"].read_text(encoding="utf-8").splitlines() == list(vibration.LABELS)


# -------------------------------------------------------------------- determinism
def test_builds_are_deterministic() -> None:
    assert stripes.build_stripes_model() == stripes.build_stripes_model()
    assert stripes.build_stripes_model_uint8() == stripes.build_stripes_model_uint8()
    assert vibration.build_vibration_model(seed=3) == vibration.build_vibration_model(seed=3)
    assert vibration.build_vibration_model(seed=3) != vibration.build_vibration_model(seed=4)
