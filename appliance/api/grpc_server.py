"""KServe v2 over gRPC: GRPCInferenceService with the REST API's models, validation, tokens and scopes.

Requests become the same checked InferRequest as REST (appliance.api.tensors), raw_input_contents as the
binary tensors and typed contents as the JSON data; outputs always go back as raw_output_contents, as
Triton does. The token comes as metadata `authorization: Bearer TOKEN`.

The server is grpcio's threaded server, not grpc.aio on the HTTP event loop: its C core does the I/O
off the GIL, each call runs on one of `grpc.threads` threads (the model invoke blocks anyway, and
releases the GIL), and the HTTP loop (uvloop) never shares a loop with grpc's own poller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from appliance import __version__
from appliance.api.admission import Admission
from appliance.api.grpc_protocol import METHODS, SERVICE, Protocol, build
from appliance.api.kserve import find_model
from appliance.api.tensors import InferRequest, check_document, v2_datatype
from appliance.auth.store import scope_allows
from appliance.errors import ApplianceError, BadRequest, Conflict
from appliance.models.manifest import Manifest

if TYPE_CHECKING:
    from appliance.config.sections import GrpcConfig
    from appliance.control import GrpcView

logger = logging.getLogger(__name__)

STOP_GRACE_S = 1.0
CODES = {  # the HTTP status of a domain error -> its gRPC code
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
CONTENTS = {  # datatype -> its InferTensorContents field
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
SCOPES = {  # rpc -> the scope it needs (None: open, as /v2/health/*)
    "ServerLive": None,
    "ServerReady": None,
    "ModelReady": "read",
    "ServerMetadata": "read",
    "ModelMetadata": "read",
    "ModelInfer": "operate",
}


class Refused(Exception):
    """A call answered with a gRPC error code (auth, rate limit)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _parameters(params: Any) -> dict[str, Any]:
    return {
        key: getattr(value, value.WhichOneof("parameter_choice") or "bool_param")
        for key, value in params.items()
    }


def _data(tensor: Any) -> list[Any]:
    """Typed contents as a list for the JSON checks: only the field of the tensor's datatype."""
    field = CONTENTS.get(tensor.datatype)
    used = [f.name for f, _ in tensor.contents.ListFields()]
    if tensor.datatype == "FP16":
        raise BadRequest(f"input {tensor.name!r}: FP16 tensors are sent as raw_input_contents")
    if any(name != field for name in used):
        raise BadRequest(
            f"input {tensor.name!r}: {tensor.datatype} data goes in contents.{field}, not {used}"
        )
    return list(getattr(tensor.contents, field)) if field else []


def to_document(request: Any) -> tuple[dict[str, Any], bytes]:
    """A ModelInferRequest as the REST request's JSON header and binary data."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs")
    inputs = []
    for index, tensor in enumerate(request.inputs):
        item: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
            "parameters": _parameters(tensor.parameters),
        }
        if raw:
            if tensor.HasField("contents"):
                raise BadRequest(f"input {tensor.name!r}: send contents or raw_input_contents, not both")
            item["parameters"]["binary_data_size"] = len(raw[index])
        else:
            item["data"] = _data(tensor)
        inputs.append(item)
    document: dict[str, Any] = {"inputs": inputs, "parameters": _parameters(request.parameters)}
    document["parameters"].pop("binary_data_output", None)  # outputs are always raw over gRPC
    if request.id:
        document["id"] = request.id
    if request.outputs:
        document["outputs"] = [
            {"name": o.name, "parameters": _parameters(o.parameters)} for o in request.outputs
        ]
    return document, b"".join(raw)  # one input: its own bytes, no copy


class InferenceService:
    """The six rpcs, each a plain function of (request, context)."""

    def __init__(self, services: GrpcView, admission: Admission, protocol: Protocol) -> None:
        self.services = services
        self.admission = admission
        self.protocol = protocol

    def allow(self, context: grpc.ServicerContext, scope: str) -> None:
        services = self.services
        metadata = {key.lower(): value for key, value in context.invocation_metadata()}
        header = str(metadata.get("authorization", ""))
        if header.lower().startswith("bearer "):
            info = services.auth.lookup(header[7:].strip())
            if info is None:
                raise Refused(grpc.StatusCode.UNAUTHENTICATED, "invalid or revoked token")
            if not scope_allows(info.scope, scope):
                raise Refused(
                    grpc.StatusCode.PERMISSION_DENIED, f"token scope '{info.scope}' does not allow '{scope}'"
                )
            key = f"token:{info.id}"
        elif header:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "send the token as 'authorization: Bearer TOKEN'")
        elif scope == "read" and services.config.auth.anonymous_read:
            key = f"peer:{context.peer()}"
        else:
            message = f"this needs a token with scope '{scope}' (metadata 'authorization: Bearer TOKEN')"
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, message)
        if services.limiter.take(key) > 0:
            raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many requests")

    def ServerLive(self, request: Any) -> Any:  # noqa: N802 (the rpc's name)
        return self.protocol["ServerLiveResponse"](live=True)

    def ServerReady(self, request: Any) -> Any:  # noqa: N802
        return self.protocol["ServerReadyResponse"](ready=self.services.health().ok)

    def ModelReady(self, request: Any) -> Any:  # noqa: N802
        manifest = find_model(self.services.registry, request.name, request.version or None)
        return self.protocol["ModelReadyResponse"](ready=".tflite" in manifest.files)

    def ServerMetadata(self, request: Any) -> Any:  # noqa: N802
        return self.protocol["ServerMetadataResponse"](
            name="edge-appliance", version=__version__, extensions=["binary_tensor_data"]
        )

    def ModelMetadata(self, request: Any) -> Any:  # noqa: N802
        manifest = find_model(self.services.registry, request.name, request.version or None)
        versions = [str(m.version) for m in self.services.registry.versions(manifest.name)]
        answer = self.protocol["ModelMetadataResponse"](
            name=manifest.name, versions=versions, platform="tflite"
        )
        for target, specs in ((answer.inputs, manifest.inputs), (answer.outputs, manifest.outputs)):
            for spec in specs:
                target.add(name=spec.name, datatype=v2_datatype(spec.dtype), shape=list(spec.shape))
        return answer

    def ModelInfer(self, request: Any) -> Any:  # noqa: N802
        manifest = find_model(self.services.registry, request.model_name, request.model_version or None)
        if not manifest.inputs:
            raise Conflict(f"model {manifest.ref} has no recorded input tensors; add it again")
        document, binary = to_document(request)
        checked = check_document(document, binary, manifest)
        with self.admission.enter():
            outputs = self.services.direct.run(manifest, checked.inputs)
        return self._response(manifest, checked, outputs)

    def _response(self, manifest: Manifest, checked: InferRequest, outputs: Iterable[Any]) -> Any:
        answer = self.protocol["ModelInferResponse"](
            model_name=manifest.name, model_version=str(manifest.version), id=checked.id or ""
        )
        for spec, array in outputs:
            if spec.name in checked.outputs:
                answer.outputs.add(name=spec.name, datatype=v2_datatype(array.dtype.name), shape=array.shape)
                answer.raw_output_contents.append(np.ascontiguousarray(array).tobytes())
        return answer


def _guarded(service: InferenceService, rpc: str) -> Callable[[Any, grpc.ServicerContext], Any]:
    """The rpc with its scope checked and every error turned into a gRPC status with a clear message."""
    method, scope = getattr(service, rpc), SCOPES[rpc]

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            if scope is not None:
                service.allow(context, scope)
            return method(request)
        except Refused as err:
            code, message = err.code, str(err)
        except ApplianceError as err:
            code, message = CODES.get(err.status, grpc.StatusCode.INTERNAL), str(err)
            if err.status >= 500 and err.status != 503:
                logger.error("gRPC %s: %s", rpc, err)
        except Exception as err:  # a bug: logged, answered without a traceback
            logger.error("gRPC %s failed: %s: %s", rpc, type(err).__name__, err)
            code, message = grpc.StatusCode.INTERNAL, "internal error (logged on the appliance)"
        context.abort(code, message)

    return handler


class GrpcServer:
    """The gRPC endpoint, started and stopped with the HTTP server."""

    def __init__(self, services: GrpcView, admission: Admission, config: GrpcConfig) -> None:
        self.config = config
        protocol = build()
        service = InferenceService(services, admission, protocol)
        handlers = {
            rpc: grpc.unary_unary_rpc_method_handler(
                _guarded(service, rpc),
                request_deserializer=protocol[request].FromString,
                response_serializer=protocol[response].SerializeToString,
            )
            for rpc, (request, response) in METHODS.items()
        }
        limit = config.max_message_bytes
        self.server = grpc.server(
            ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="grpc"),
            handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        self.port = 0

    def start(self) -> None:
        address = f"{self.config.host}:{self.config.port}"
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as err:  # grpcio's way of saying the port is taken
            raise OSError(f"gRPC cannot listen on {address}: {err}") from err
        self.server.start()
        logger.info("KServe v2 gRPC on %s", address)

    def stop(self) -> None:
        self.server.stop(STOP_GRACE_S).wait()
