"""A small TFLite flatbuffer writer, so the project can build its own demo models without TensorFlow.

`GraphBuilder` records tensors, constant buffers and builtin operators for a single subgraph, infers
and checks every output shape as it goes (a wrong use raises `ValueError` naming the op and the
problem), and `to_bytes()` packs the result with the LiteRT schema's object API into a schema
version 3 model with the `TFL3` file identifier and a `serving_default` signature. Buffer 0 is the
empty sentinel buffer that all non-constant tensors point at; constant data is 16-byte aligned, as
the TFLite converter does. Quantisation is per tensor (one scale, one zero point). Operator codes
are written as version 1, which LiteRT / TFLite runtimes accept for every builtin kernel used here.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Final

import flatbuffers
import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema

from appliance_tools.demo.tflite_types import (
    Activation,
    ConvParams,
    DenseParams,
    DType,
    Padding,
    Quantization,
    Tensor,
)

logger = logging.getLogger(__name__)

_SOFTMAX_ZERO_POINT: Final = {DType.UINT8: 0, DType.INT8: -128}


SCHEMA_VERSION: Final = 3
FILE_IDENTIFIER: Final = b"TFL3"
BUFFER_ALIGNMENT: Final = 16
OPERATOR_VERSION: Final = 1
INITIAL_BUILDER_BYTES: Final = 1024
DEPRECATED_CODE_LIMIT: Final = 127  # builtin codes below this also go into deprecated_builtin_code
SIGNATURE_KEY: Final = "serving_default"
SUBGRAPH_NAME: Final = "main"
SOFTMAX_SCALE: Final = 1.0 / 256.0  # the only output scale the quantised SOFTMAX kernels accept


@dataclass(frozen=True)
class _OpSpec:
    """One operator: builtin name, inputs, output and builtin options object (or None)."""

    op: str
    inputs: tuple[Tensor, ...]
    output: Tensor
    options: Any = None

    @property
    def options_type(self) -> int:
        name = "NONE" if self.options is None else type(self.options).__name__.removesuffix("T")
        return int(getattr(schema.BuiltinOptions, name))


def _conv_size(size: int, kernel: int, stride: int, padding: Padding) -> int:
    if padding is Padding.SAME:
        return -(-size // stride)
    return -(-(size - kernel + 1) // stride)


def _activation_code(activation: Activation) -> int:
    return int(getattr(schema.ActivationFunctionType, activation.value))


def _operands(x: Tensor, weights: Tensor, bias: Tensor | None) -> tuple[Tensor, ...]:
    return (x, weights) if bias is None else (x, weights, bias)


class _AlignedBuffer:
    """Packs like `schema.BufferT` but aligns the data vector, as the TFLite converter does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def Pack(self, builder: Any) -> Any:  # noqa: N802 - the method name the schema's object API calls
        offset = None
        if self.data:
            builder.StartVector(1, len(self.data), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(self.data)
            builder.Bytes[builder.head : builder.head + len(self.data)] = self.data
            offset = builder.EndVector()
        schema.BufferStart(builder)
        if offset is not None:
            schema.BufferAddData(builder, offset)
        return schema.BufferEnd(builder)


class GraphBuilder:
    """Builds a single-subgraph TFLite model op by op; every op method returns its output tensor.

    Op methods take an optional `name` for the output tensor (else one is generated). Ops whose
    output range differs from the input's need a quantization for a quantised (uint8/int8) output
    (`quant`, or the `quantization` of ConvParams / DenseParams).
    """

    def __init__(self, description: str = "built by appliance_tools.demo.tflite_builder") -> None:
        self._description = description
        self._tensors: list[Tensor] = []
        self._tensor_buffer: list[int] = []
        self._buffers: list[bytes] = [b""]
        self._ops: list[_OpSpec] = []
        self._inputs: list[Tensor] = []
        self._outputs: list[Tensor] = []

    # ------------------------------------------------------------------ tensors
    def _new_tensor(
        self, name: str, shape: tuple[int, ...], dtype: DType, quantization: Quantization | None
    ) -> Tensor:
        if any(t.name == name for t in self._tensors):
            raise ValueError(f"tensor name {name!r} is already used")
        if any(d <= 0 for d in shape):
            raise ValueError(f"tensor {name!r}: every dimension must be > 0, got {shape}")
        if dtype.is_quantized and quantization is None:
            raise ValueError(f"tensor {name!r}: {dtype.value} tensors need a quantization")
        tensor = Tensor(len(self._tensors), name, shape, dtype, quantization)
        self._tensors.append(tensor)
        self._tensor_buffer.append(0)
        return tensor

    def _out(self, op: str, name: str | None, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A new output tensor with the dtype and quantisation of `like`."""
        auto = name if name is not None else f"{op}_{len(self._tensors)}"
        return self._new_tensor(auto, shape, like.dtype, like.quantization)

    def add_input(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: DType = DType.FLOAT32,
        quant: Quantization | None = None,
    ) -> Tensor:
        """A graph input, in the order of calls."""
        tensor = self._new_tensor(name, tuple(shape), dtype, quant)
        self._inputs.append(tensor)
        return tensor

    def add_constant(self, name: str, array: npt.ArrayLike, quant: Quantization | None = None) -> Tensor:
        """A constant tensor with its own buffer; the dtype comes from the array and must be supported."""
        values = np.asarray(array)
        dtype = next((d for d in DType if d.numpy_dtype == values.dtype), None)
        if dtype is None:
            supported = ", ".join(d.value for d in DType)
            raise ValueError(f"constant {name!r}: dtype {values.dtype} is not one of {supported}")
        tensor = self._new_tensor(name, tuple(int(d) for d in values.shape), dtype, quant)
        self._buffers.append(np.ascontiguousarray(values, dtype=dtype.numpy_dtype).tobytes())
        self._tensor_buffer[tensor.index] = len(self._buffers) - 1
        return tensor

    def mark_outputs(self, *tensors: Tensor) -> None:
        """The graph outputs, in order; they keep the names given when they were made."""
        if not tensors:
            raise ValueError("mark_outputs: at least one output tensor is needed")
        self._check_owned("mark_outputs", tensors)
        self._outputs = list(tensors)

    def _check_owned(self, op: str, tensors: tuple[Tensor, ...]) -> None:
        for tensor in tensors:
            if tensor.index >= len(self._tensors) or self._tensors[tensor.index] != tensor:
                raise ValueError(f"{op}: tensor {tensor.name!r} belongs to another graph")

    def _add(self, spec: _OpSpec) -> Tensor:
        self._check_owned(spec.op.lower(), spec.inputs)
        self._ops.append(spec)
        return spec.output

    def _like(self, op: str, x: Tensor, quantization: Quantization | None) -> Tensor:
        """A template for an output whose range differs from x's (a quantised one needs `quantization`)."""
        if x.dtype.is_quantized and quantization is None:
            raise ValueError(f"{op}: a {x.dtype.value} input needs an output quantization")
        if not x.dtype.is_quantized and quantization is not None:
            raise ValueError(f"{op}: a {x.dtype.value} output takes no quantization")
        return Tensor(-1, "", x.shape, x.dtype, quantization)

    # -------------------------------------------------------------- convolution
    def _check_weights(self, op: str, x: Tensor, weights: Tensor, bias: Tensor | None) -> None:
        """Float inputs take float32 weights and bias; quantised ones weights of their type and int32 bias."""
        want_weights = x.dtype if x.dtype.is_quantized else DType.FLOAT32
        want_bias, channels = DType.INT32 if x.dtype.is_quantized else DType.FLOAT32, weights.shape[0]
        if weights.dtype is not want_weights:
            raise ValueError(f"{op}: a {x.dtype.value} input needs {want_weights.value} weights")
        if bias is not None and (bias.dtype is not want_bias or bias.shape != (channels,)):
            raise ValueError(f"{op}: bias must be {want_bias.value} of shape ({channels},), got {bias.shape}")

    def _zero_bias(self, out_name: str, x: Tensor, weights: Tensor) -> Tensor:
        if x.quantization is None or weights.quantization is None:
            return self.add_constant(f"{out_name}/bias", np.zeros(weights.shape[0], dtype=np.float32))
        quant = Quantization(x.quantization.scale * weights.quantization.scale, 0)
        return self.add_constant(f"{out_name}/bias", np.zeros(weights.shape[0], dtype=np.int32), quant)

    def _conv_output_shape(self, x: Tensor, weights: Tensor, params: ConvParams) -> tuple[int, ...]:
        if len(x.shape) != 4 or len(weights.shape) != 4:
            raise ValueError(f"conv_2d: input {x.shape} and filter {weights.shape} must both be 4-D")
        if weights.shape[3] != x.shape[3]:
            raise ValueError(
                f"conv_2d: input has {x.shape[3]} channels, the filter expects {weights.shape[3]}"
            )
        if min(params.stride) <= 0:
            raise ValueError(f"conv_2d: strides must be > 0, got {params.stride}")
        out_h = _conv_size(x.shape[1], weights.shape[1], params.stride[0], params.padding)
        out_w = _conv_size(x.shape[2], weights.shape[2], params.stride[1], params.padding)
        if out_h <= 0 or out_w <= 0:
            raise ValueError(
                f"conv_2d: filter {weights.shape} does not fit input {x.shape} with VALID padding"
            )
        return x.shape[0], out_h, out_w, weights.shape[0]

    def conv_2d(
        self,
        x: Tensor,
        weights: Tensor,
        bias: Tensor | None = None,
        params: ConvParams = ConvParams(),
        *,
        name: str | None = None,
    ) -> Tensor:
        """CONV_2D: x [N,H,W,Cin], weights [Cout,kh,kw,Cin], bias [Cout] (int32 for a quantised x).

        LiteRT's CONV_2D needs a bias, so a zero one is added when none is given.
        """
        shape = self._conv_output_shape(x, weights, params)
        self._check_weights("conv_2d", x, weights, bias)
        out = self._out("conv_2d", name, shape, self._like("conv_2d", x, params.quantization))
        if bias is None:
            bias = self._zero_bias(out.name, x, weights)
        options = schema.Conv2DOptionsT()
        options.padding = int(getattr(schema.Padding, params.padding.value))
        options.strideH, options.strideW = params.stride
        options.fusedActivationFunction = _activation_code(params.activation)
        return self._add(_OpSpec("CONV_2D", _operands(x, weights, bias), out, options))

    def fully_connected(
        self,
        x: Tensor,
        weights: Tensor,
        bias: Tensor | None = None,
        params: DenseParams = DenseParams(),
        *,
        name: str | None = None,
    ) -> Tensor:
        """FULLY_CONNECTED: x [..., In] (seen as [-1, In]), weights [Units, In], bias [Units]."""
        if len(weights.shape) != 2 or x.shape[-1] != weights.shape[1]:
            raise ValueError(f"fully_connected: weights {weights.shape} must be [units, {x.shape[-1]}]")
        self._check_weights("fully_connected", x, weights, bias)
        shape = (math.prod(x.shape) // x.shape[-1], weights.shape[0])
        out = self._out("fully_connected", name, shape, self._like("fully_connected", x, params.quantization))
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = _activation_code(params.activation)
        return self._add(_OpSpec("FULLY_CONNECTED", _operands(x, weights, bias), out, options))

    # ------------------------------------------------------------- element-wise
    def relu(self, x: Tensor, *, name: str | None = None) -> Tensor:
        return self._add(_OpSpec("RELU", (x,), self._out("relu", name, x.shape, x)))

    def abs(self, x: Tensor, *, name: str | None = None) -> Tensor:
        return self._add(_OpSpec("ABS", (x,), self._out("abs", name, x.shape, x), schema.AbsOptionsT()))

    def log(self, x: Tensor, *, name: str | None = None) -> Tensor:
        if x.dtype is not DType.FLOAT32:
            raise ValueError(f"log: input must be float32, got {x.dtype.value}")
        return self._add(_OpSpec("LOG", (x,), self._out("log", name, x.shape, x)))

    def _binary(
        self, op: str, operands: tuple[Tensor, Tensor], name: str | None, quant: Quantization | None
    ) -> Tensor:
        a, b = operands
        if a.dtype is not b.dtype:
            raise ValueError(f"{op}: operand dtypes differ ({a.dtype.value} vs {b.dtype.value})")
        try:
            shape = tuple(int(d) for d in np.broadcast_shapes(a.shape, b.shape))
        except ValueError:
            raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None
        out = self._out(op, name, shape, self._like(op, a, quant))
        options = getattr(schema, f"{op.capitalize()}OptionsT")()
        return self._add(_OpSpec(op.upper(), operands, out, options))

    def add(
        self, a: Tensor, b: Tensor, *, name: str | None = None, quant: Quantization | None = None
    ) -> Tensor:
        return self._binary("add", (a, b), name, quant)

    def sub(
        self, a: Tensor, b: Tensor, *, name: str | None = None, quant: Quantization | None = None
    ) -> Tensor:
        return self._binary("sub", (a, b), name, quant)

    def mul(
        self, a: Tensor, b: Tensor, *, name: str | None = None, quant: Quantization | None = None
    ) -> Tensor:
        return self._binary("mul", (a, b), name, quant)

    # ---------------------------------------------------------- shapes and types
    def mean(
        self, x: Tensor, axes: tuple[int, ...], keep_dims: bool = False, *, name: str | None = None
    ) -> Tensor:
        """MEAN over `axes` (negative axes count from the end)."""
        rank = len(x.shape)
        if not axes or any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) != len(axes):
            raise ValueError(f"mean: axes {axes} are not distinct valid axes of a rank-{rank} input")
        reduced = sorted(a % rank for a in axes)
        shape = tuple(
            1 if i in reduced else d for i, d in enumerate(x.shape) if keep_dims or i not in reduced
        )
        out = self._out("mean", name, shape, x)
        axes_tensor = self.add_constant(f"{out.name}/axes", np.array(reduced, dtype=np.int32))
        options = schema.ReducerOptionsT()
        options.keepDims = keep_dims
        return self._add(_OpSpec("MEAN", (x, axes_tensor), out, options))

    def softmax(self, x: Tensor, beta: float = 1.0, *, name: str | None = None) -> Tensor:
        """SOFTMAX over the last axis; a quantised output gets scale 1/256 (the kernels' only choice)."""
        quant = Quantization(SOFTMAX_SCALE, _SOFTMAX_ZERO_POINT[x.dtype]) if x.dtype.is_quantized else None
        out = self._out("softmax", name, x.shape, self._like("softmax", x, quant))
        options = schema.SoftmaxOptionsT()
        options.beta = beta
        return self._add(_OpSpec("SOFTMAX", (x,), out, options))

    def reshape(self, x: Tensor, shape: tuple[int, ...], *, name: str | None = None) -> Tensor:
        """RESHAPE; one dimension may be -1 and is then inferred."""
        size, known = math.prod(x.shape), math.prod(d for d in shape if d != -1)
        if shape.count(-1) > 1 or any(d == 0 or d < -1 for d in shape) or size % known:
            raise ValueError(f"reshape: cannot reshape {x.shape} ({size} elements) to {shape}")
        resolved = tuple(size // known if d == -1 else d for d in shape)
        if math.prod(resolved) != size:
            raise ValueError(f"reshape: cannot reshape {x.shape} ({size} elements) to {shape}")
        out = self._out("reshape", name, resolved, x)
        shape_tensor = self.add_constant(f"{out.name}/shape", np.array(resolved, dtype=np.int32))
        options = schema.ReshapeOptionsT()
        options.newShape = list(resolved)
        return self._add(_OpSpec("RESHAPE", (x, shape_tensor), out, options))

    def quantize(self, x: Tensor, dtype: DType, quant: Quantization, *, name: str | None = None) -> Tensor:
        """QUANTIZE a float32 tensor (or requantise a quantised one) to uint8 / int8."""
        if not dtype.is_quantized or x.dtype is DType.INT32:
            raise ValueError(f"quantize: cannot quantize {x.dtype.value} to {dtype.value}")
        out = self._out("quantize", name, x.shape, Tensor(-1, "", x.shape, dtype, quant))
        return self._add(_OpSpec("QUANTIZE", (x,), out))

    def dequantize(self, x: Tensor, *, name: str | None = None) -> Tensor:
        """DEQUANTIZE a uint8 / int8 tensor to float32."""
        if not x.dtype.is_quantized:
            raise ValueError(f"dequantize: input must be uint8 or int8, got {x.dtype.value}")
        out = self._out("dequantize", name, x.shape, Tensor(-1, "", x.shape, DType.FLOAT32))
        return self._add(_OpSpec("DEQUANTIZE", (x,), out))

    # ---------------------------------------------------------------- serialise
    def _tensor_t(self, tensor: Tensor) -> Any:
        packed = schema.TensorT()
        packed.name, packed.shape = tensor.name, list(tensor.shape)
        packed.type, packed.buffer = tensor.dtype.tflite_type, self._tensor_buffer[tensor.index]
        if tensor.quantization is not None:
            packed.quantization = schema.QuantizationParametersT()
            packed.quantization.scale = [tensor.quantization.scale]
            packed.quantization.zeroPoint = [tensor.quantization.zero_point]
        return packed

    def _operators_t(self) -> tuple[list[Any], list[Any]]:
        names = list(dict.fromkeys(spec.op for spec in self._ops))
        operators = []
        for spec in self._ops:
            operator = schema.OperatorT()
            operator.opcodeIndex = names.index(spec.op)
            operator.inputs, operator.outputs = [t.index for t in spec.inputs], [spec.output.index]
            operator.builtinOptionsType, operator.builtinOptions = spec.options_type, spec.options
            operators.append(operator)
        opcodes = []
        for op in names:
            opcode = schema.OperatorCodeT()
            opcode.builtinCode = int(getattr(schema.BuiltinOperator, op))
            opcode.deprecatedBuiltinCode = min(opcode.builtinCode, DEPRECATED_CODE_LIMIT)
            opcode.version = OPERATOR_VERSION
            opcodes.append(opcode)
        return opcodes, operators

    def _signature_t(self) -> Any:
        def tensor_map(tensor: Tensor) -> Any:
            mapped = schema.TensorMapT()
            mapped.name, mapped.tensorIndex = tensor.name, tensor.index
            return mapped

        signature = schema.SignatureDefT()
        signature.signatureKey = SIGNATURE_KEY
        signature.inputs = [tensor_map(t) for t in self._inputs]
        signature.outputs = [tensor_map(t) for t in self._outputs]
        return signature

    def to_bytes(self) -> bytes:
        """The model as a .tflite flatbuffer (schema version 3, file identifier TFL3)."""
        if not self._inputs or not self._outputs or not self._ops:
            raise ValueError("to_bytes: the graph needs an input, an operator and marked outputs")
        subgraph = schema.SubGraphT()
        subgraph.name, subgraph.tensors = SUBGRAPH_NAME, [self._tensor_t(t) for t in self._tensors]
        subgraph.inputs, subgraph.outputs = [t.index for t in self._inputs], [t.index for t in self._outputs]
        model = schema.ModelT()
        model.version, model.description = SCHEMA_VERSION, self._description
        model.operatorCodes, subgraph.operators = self._operators_t()
        model.subgraphs, model.signatureDefs = [subgraph], [self._signature_t()]
        model.buffers = [_AlignedBuffer(data) for data in self._buffers]
        builder = flatbuffers.Builder(INITIAL_BUILDER_BYTES)
        builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
        data = bytes(builder.Output())
        logger.debug("built a %d-byte model with %d operators", len(data), len(self._ops))
        return data


__all__ = [
    "Activation",
    "ConvParams",
    "DType",
    "DenseParams",
    "GraphBuilder",
    "Padding",
    "Quantization",
    "Tensor",
]
