"""The KServe v2 gRPC messages (package `inference`, service `GRPCInferenceService`), built at import.

The messages are described here field by field, wire-compatible with the Open Inference Protocol's
grpc_predict_v2.proto (the same package, names and field numbers, so stock `tritonclient.grpc` works),
and built into a private descriptor pool. Why not generated _pb2 files: tritonclient's generated module
registers the same `inference.*` names in protobuf's default pool, and a second file defining them there
fails at import ("duplicate symbol") whenever both live in one process (the tests, a bench client);
a private pool cannot clash, and there is no protoc step or generated code to keep in sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"
F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED
SCALARS = {
    "bool": F.TYPE_BOOL,
    "string": F.TYPE_STRING,
    "bytes": F.TYPE_BYTES,
    "int32": F.TYPE_INT32,
    "int64": F.TYPE_INT64,
    "uint32": F.TYPE_UINT32,
    "uint64": F.TYPE_UINT64,
    "float": F.TYPE_FLOAT,
    "double": F.TYPE_DOUBLE,
}
PARAMS = "map<InferParameter>"  # map<string, InferParameter>

# message -> [(field, number, type, repeated)]; a type that is not a scalar names a message
MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool", False)],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool", False)],
    "ModelReadyRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "ModelReadyResponse": [("ready", 1, "bool", False)],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, "string", False),
        ("version", 2, "string", False),
        ("extensions", 3, "string", True),
    ],
    "ModelMetadataRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "ModelMetadataResponse": [
        ("name", 1, "string", False),
        ("versions", 2, "string", True),
        ("platform", 3, "string", False),
        ("inputs", 4, "ModelMetadataResponse.TensorMetadata", True),
        ("outputs", 5, "ModelMetadataResponse.TensorMetadata", True),
    ],
    "ModelMetadataResponse.TensorMetadata": [
        ("name", 1, "string", False),
        ("datatype", 2, "string", False),
        ("shape", 3, "int64", True),
    ],
    "ModelInferRequest": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        ("parameters", 4, PARAMS, True),
        ("inputs", 5, "ModelInferRequest.InferInputTensor", True),
        ("outputs", 6, "ModelInferRequest.InferRequestedOutputTensor", True),
        ("raw_input_contents", 7, "bytes", True),
    ],
    "ModelInferRequest.InferInputTensor": [
        ("name", 1, "string", False),
        ("datatype", 2, "string", False),
        ("shape", 3, "int64", True),
        ("parameters", 4, PARAMS, True),
        ("contents", 5, "InferTensorContents", False),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", 1, "string", False),
        ("parameters", 2, PARAMS, True),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        ("parameters", 4, PARAMS, True),
        ("outputs", 5, "ModelInferResponse.InferOutputTensor", True),
        ("raw_output_contents", 6, "bytes", True),
    ],
    "ModelInferResponse.InferOutputTensor": [
        ("name", 1, "string", False),
        ("datatype", 2, "string", False),
        ("shape", 3, "int64", True),
        ("parameters", 4, PARAMS, True),
        ("contents", 5, "InferTensorContents", False),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "bool", True),
        ("int_contents", 2, "int32", True),
        ("int64_contents", 3, "int64", True),
        ("uint_contents", 4, "uint32", True),
        ("uint64_contents", 5, "uint64", True),
        ("fp32_contents", 6, "float", True),
        ("fp64_contents", 7, "double", True),
        ("bytes_contents", 8, "bytes", True),
    ],
}
PARAMETER_CHOICES = [  # InferParameter: oneof parameter_choice
    ("bool_param", 1, "bool"),
    ("int64_param", 2, "int64"),
    ("string_param", 3, "string"),
    ("double_param", 4, "double"),
    ("uint64_param", 5, "uint64"),
]
METHODS = {  # rpc -> (request, response)
    "ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
    "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
    "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
    "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
    "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
    "ModelInfer": ("ModelInferRequest", "ModelInferResponse"),
}


def _field(name: str, number: int, kind: str, repeated: bool) -> descriptor_pb2.FieldDescriptorProto:
    field = F(name=name, number=number, label=REPEATED if repeated else OPTIONAL)
    if kind in SCALARS:
        field.type = SCALARS[kind]
    else:
        field.type = F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{kind}"
    return field


def _message(file: descriptor_pb2.FileDescriptorProto, path: str) -> descriptor_pb2.DescriptorProto:
    """The (possibly nested) message `path`, created on first use."""
    *parents, name = path.split(".")
    container: Any = file.message_type
    for parent in parents:
        container = next(m for m in container if m.name == parent).nested_type
    found = next((m for m in container if m.name == name), None)
    return found if found is not None else container.add(name=name)


def _fields(
    message: descriptor_pb2.DescriptorProto, path: str, fields: list[tuple[str, int, str, bool]]
) -> None:
    for name, number, kind, repeated in fields:
        if kind == PARAMS:  # a map is a repeated nested entry message
            entry = message.nested_type.add(name="ParametersEntry")
            entry.options.map_entry = True
            entry.field.append(_field("key", 1, "string", False))
            entry.field.append(_field("value", 2, "InferParameter", False))
            message.field.append(_field(name, number, f"{path}.ParametersEntry", True))
        else:
            message.field.append(_field(name, number, kind, repeated))


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="appliance/kserve_v2.proto", package=PACKAGE, syntax="proto3"
    )
    for path, fields in MESSAGES.items():
        _fields(_message(file, path), path, fields)
    parameter = file.message_type.add(name="InferParameter")
    parameter.oneof_decl.add(name="parameter_choice")
    for name, number, kind in PARAMETER_CHOICES:
        field = _field(name, number, kind, False)
        field.oneof_index = 0
        parameter.field.append(field)
    service = file.service.add(name=SERVICE.rsplit(".", 1)[1])
    for rpc, (request, response) in METHODS.items():
        service.method.add(name=rpc, input_type=f".{PACKAGE}.{request}", output_type=f".{PACKAGE}.{response}")
    return file


@dataclass(frozen=True)
class Protocol:
    """The message classes by name ("ModelInferRequest", "ModelInferResponse.InferOutputTensor", ...)."""

    classes: dict[str, type[Any]]

    def __getitem__(self, name: str) -> type[Any]:
        return self.classes[name]


def build() -> Protocol:
    """The message classes, from a private pool (never protobuf's default one)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    names = [*MESSAGES, "InferParameter"]
    return Protocol(
        {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{n}")) for n in names}
    )
