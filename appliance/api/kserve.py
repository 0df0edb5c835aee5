"""KServe v2 / Open Inference Protocol over HTTP, with Triton's binary tensor extension.

Every registry model is served by name (and version); tensors go to the model as they are. Stock
clients such as `tritonclient[http]` work unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from appliance import __version__
from appliance.api.auth import open_route, requires
from appliance.api.infer import read_body
from appliance.api.status import services_of
from appliance.errors import BadRequest, NotFound
from appliance.models.manifest import Manifest

HEADER_LENGTH = "inference-header-content-length"
DATATYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
NUMPY_TO_V2 = {v: k for k, v in DATATYPES.items()}


def _manifest(request: Request) -> Manifest:
    params = request.path_params
    version = params.get("version")
    if version is not None and not (str(version).isascii() and str(version).isdigit()):
        raise NotFound(f"model version {version!r} is not a number")
    return services_of(request).registry.get(params["model"], int(version) if version else None)


def _tensor_meta(specs: Any) -> list[dict[str, Any]]:
    return [
        {"name": t.name, "datatype": NUMPY_TO_V2.get(t.dtype, t.dtype.upper()), "shape": list(t.shape)}
        for t in specs
    ]


@open_route
async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


@open_route
async def ready(request: Request) -> Response:
    """Ready = producing results: the same Health as /api/v1/health, with its reasons."""
    health = services_of(request).health()  # no I/O: cheap enough for the event loop
    body = {"ready": health.ok, "reasons": list(health.reasons)}
    return JSONResponse(body, status_code=200 if health.ok else 503)


@requires("read")
async def server_metadata(request: Request) -> Response:
    return JSONResponse(
        {"name": "edge-appliance", "version": __version__, "extensions": ["binary_tensor_data"]}
    )


@requires("read")
async def model_metadata(request: Request) -> Response:
    manifest = _manifest(request)
    versions = [str(m.version) for m in services_of(request).registry.versions(manifest.name)]
    return JSONResponse(
        {
            "name": manifest.name,
            "versions": versions,
            "platform": "tflite",
            "inputs": _tensor_meta(manifest.inputs),
            "outputs": _tensor_meta(manifest.outputs),
        }
    )


@requires("read")
async def model_ready(request: Request) -> Response:
    manifest = _manifest(request)
    return JSONResponse({"name": manifest.name, "ready": ".tflite" in manifest.files})


def _split(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    size = len(body) if header_length is None else int(header_length) if header_length.isdigit() else -1
    if not 0 <= size <= len(body):
        raise BadRequest(f"{HEADER_LENGTH} {header_length!r} does not fit a {len(body)} byte body")
    try:
        document = json.loads(body[:size] or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(f"inference request is not valid JSON: {err}") from err
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise BadRequest("inference request needs an 'inputs' list")
    return document, body[size:]


def _input_array(item: Any, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    if not isinstance(item, dict) or not isinstance(item.get("shape"), list):
        raise BadRequest("each input needs 'name', 'shape', 'datatype' and 'data' (or binary data)")
    dtype = DATATYPES.get(str(item.get("datatype")))
    if dtype is None:
        raise BadRequest(f"input {item.get('name')!r}: datatype {item.get('datatype')!r} is not supported")
    shape = [int(d) for d in item["shape"]]
    size = (item.get("parameters") or {}).get("binary_data_size")
    try:
        if size is not None:
            array = np.frombuffer(binary[offset : offset + int(size)], dtype=dtype).reshape(shape)
            return array, offset + int(size)
        return np.asarray(item.get("data"), dtype=dtype).reshape(shape), offset
    except (ValueError, TypeError) as err:
        raise BadRequest(f"input {item.get('name')!r}: data does not match shape {shape}: {err}") from err


def _wants_binary(document: dict[str, Any], name: str) -> bool:
    for output in document.get("outputs") or []:
        if isinstance(output, dict) and output.get("name") == name:
            return bool((output.get("parameters") or {}).get("binary_data", False))
    return bool((document.get("parameters") or {}).get("binary_data_output", False))


def _response(manifest: Manifest, document: dict[str, Any], outputs: list[Any]) -> Response:
    requested = {o.get("name") for o in document.get("outputs") or [] if isinstance(o, dict)}
    body: dict[str, Any] = {
        "model_name": manifest.name,
        "model_version": str(manifest.version),
        "outputs": [],
    }
    if "id" in document:
        body["id"] = document["id"]
    blobs: list[bytes] = []
    for spec, array in outputs:
        if requested and spec.name not in requested:
            continue
        meta: dict[str, Any] = {
            "name": spec.name,
            "datatype": NUMPY_TO_V2[array.dtype.name],
            "shape": list(array.shape),
        }
        if _wants_binary(document, spec.name):
            blob = np.ascontiguousarray(array).tobytes()
            meta["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            meta["data"] = array.reshape(-1).tolist()
        body["outputs"].append(meta)
    header = json.dumps(body, separators=(",", ":")).encode()
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(
        header + b"".join(blobs),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


@requires("operate")
async def infer(request: Request) -> Response:
    services = services_of(request)
    manifest = _manifest(request)
    body = await read_body(request, services.config.server.max_upload_bytes)
    document, binary = _split(body, request.headers.get(HEADER_LENGTH))
    inputs: dict[str, np.ndarray] = {}
    offset, view = 0, memoryview(binary)
    for item in document["inputs"]:
        inputs[str(item.get("name"))], offset = _input_array(item, view, offset)
    outputs = await run_in_threadpool(services.direct.run, manifest, inputs)
    return _response(manifest, document, outputs)


def routes() -> list[Route]:
    model = "/v2/models/{model}"
    versioned = "/v2/models/{model}/versions/{version}"
    return [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        *[Route(base, model_metadata, methods=["GET"]) for base in (model, versioned)],
        *[Route(f"{base}/ready", model_ready, methods=["GET"]) for base in (model, versioned)],
        *[Route(f"{base}/infer", infer, methods=["POST"]) for base in (model, versioned)],
    ]
