"""KServe v2 / Open Inference Protocol over HTTP, with Triton's binary tensor extension.

Every registry model is served by name (and version); tensors go to the model as they are. Stock
clients such as `tritonclient[http]` work unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance import __version__
from appliance.api.admission import admission_of
from appliance.api.auth import open_route, requires
from appliance.api.bodies import JSONResponse, dumps, read_body
from appliance.api.context import serving_view
from appliance.api.tensors import HEADER_LENGTH, InferRequest, parse_request, v2_datatype
from appliance.errors import Conflict, ModelRejected, NotFound
from appliance.models.manifest import Manifest

if TYPE_CHECKING:
    from appliance.models.registry import Registry
    from appliance.pipeline.direct import DirectRunner


def _manifest(request: Request) -> Manifest:
    params = request.path_params
    version = params.get("version")
    return find_model(
        serving_view(request).registry, params["model"], None if version is None else str(version)
    )


def _tensor_meta(specs: Any) -> list[dict[str, Any]]:
    return [{"name": t.name, "datatype": v2_datatype(t.dtype), "shape": list(t.shape)} for t in specs]


@open_route
async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


@open_route
async def ready(request: Request) -> Response:
    """Ready = producing results: the same Health as /api/v1/health, with its reasons."""
    health = serving_view(request).health()  # no I/O: cheap enough for the event loop
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
    versions = [str(m.version) for m in serving_view(request).registry.versions(manifest.name)]
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


def raw_bytes(array: np.ndarray) -> memoryview:
    """The tensor's bytes, row-major, as a view (a copy only when the array is not contiguous)."""
    return np.ascontiguousarray(array).data.cast("B")


def find_model(registry: Registry, name: str, version: str | None) -> Manifest:
    """The registry model by name and optional version string, or NotFound (as Triton says)."""
    if version is not None and not (version.isascii() and version.isdigit()):
        raise NotFound(f"model version {version!r} is not a number")
    try:
        return registry.get(name, int(version) if version else None)
    except ModelRejected as err:  # not a model name at all: unknown, as Triton says
        raise NotFound(f"unknown model {name!r}") from err


def _response(manifest: Manifest, request: InferRequest, outputs: list[Any]) -> Response:
    body: dict[str, Any] = {
        "model_name": manifest.name,
        "model_version": str(manifest.version),
        "outputs": [],
    }
    if request.id is not None:
        body["id"] = request.id
    blobs: list[memoryview] = []
    for spec, array in outputs:
        if spec.name not in request.outputs:
            continue
        meta: dict[str, Any] = {
            "name": spec.name,
            "datatype": v2_datatype(array.dtype.name),
            "shape": list(array.shape),
        }
        if spec.name in request.binary:
            blob = raw_bytes(array)
            meta["parameters"] = {"binary_data_size": blob.nbytes}
            blobs.append(blob)
        else:
            meta["data"] = array.reshape(-1)
        body["outputs"].append(meta)
    header = dumps(body)
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(
        b"".join([header, *blobs]),  # the one copy: header and tensors straight into the body
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


@requires("operate")
async def infer(request: Request) -> Response:
    services = serving_view(request)
    manifest = _manifest(request)
    if not manifest.inputs:
        raise Conflict(f"model {manifest.ref} has no recorded input tensors; add it again")
    body = await read_body(request, services.config.server.max_upload_bytes)
    header_length = request.headers.get(HEADER_LENGTH)
    with admission_of(request).enter():  # Busy (503) at once past server.max_inflight
        return await run_in_threadpool(_answer, services.direct, manifest, body, header_length)


def _answer(direct: DirectRunner, manifest: Manifest, body: bytes, header_length: str | None) -> Response:
    """Parse, check, run and encode in one worker thread: a 1 MB JSON body costs milliseconds of
    parsing, which would otherwise hold the event loop (and every other request) meanwhile."""
    checked = parse_request(body, header_length, manifest)
    return _response(manifest, checked, direct.run(manifest, checked.inputs))


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
