"""The model registry over HTTP: list, upload (validated), activate, rollback, delete inactive versions."""

from __future__ import annotations

import tempfile
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appliance.api.access import json_body
from appliance.api.auth import requires
from appliance.api.params import float_param, int_param
from appliance.api.status import services_of
from appliance.control import ModelControl
from appliance.errors import BadRequest, PayloadTooLarge
from appliance.models.manifest import DecoderSpec, InputSpec, Manifest, Thresholds
from appliance.models.registry import SUFFIXES, AddRequest
from appliance.services import Services

MAX_MODEL_BYTES = 200 * 1024 * 1024


def _floats(params: QueryParams, name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = params.get(name)
    if not raw:
        return default
    try:
        return tuple(float(v) for v in raw.split(","))
    except ValueError as err:
        raise BadRequest(f"{name}: comma-separated numbers expected, got {raw!r}") from err


def add_request(params: QueryParams, file: Path) -> AddRequest:
    """Everything `models add` takes, from query parameters (the body is the model file)."""
    task = params.get("task")
    if not task:
        raise BadRequest("task: required (classify, detect, segment or raw)")
    labels = tuple(v.strip() for v in (params.get("labels") or "").split(",") if v.strip())
    spec = InputSpec(
        params.get("layout", "nhwc"),
        params.get("color", "rgb"),
        _floats(params, "mean", (0.0, 0.0, 0.0)),
        _floats(params, "std", (255.0, 255.0, 255.0)),
        params.get("resize", "stretch"),
    )
    score, iou, mask = (float_param(params, n) for n in ("score", "iou", "mask"))
    thresholds = Thresholds(
        score=0.5 if score is None else score,
        iou=0.3 if iou is None else iou,
        top_k=int_param(params, "top_k", 5, 1, 1000) or 5,
        mask=0.5 if mask is None else mask,
    )
    return AddRequest(
        file,
        task,
        params.get("name", ""),
        labels,
        spec,
        thresholds,
        DecoderSpec(params.get("decoder", "auto")),
        params.get("description", ""),
    )


@requires("read")
async def list_models(request: Request) -> Response:
    registry = services_of(request).registry
    active = registry.active()
    items = [{**m.to_json(), "active": active is not None and active.ref == m.ref} for m in registry.list()]
    return JSONResponse({"models": items, "active": active.ref if active else None})


async def receive_model(request: Request, services: Services, filename: str) -> Manifest:
    """Stream the body (the model file) to a staging folder, at most MAX_MODEL_BYTES, and add it to
    the registry with the options in the query string. Shared by the API and the web UI."""
    with tempfile.TemporaryDirectory(dir=services.registry.root, prefix=".upload-") as tmp:
        path = Path(tmp) / Path(filename).name
        size = 0
        with path.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_MODEL_BYTES:
                    raise PayloadTooLarge(f"the model is over the {MAX_MODEL_BYTES // 2**20} MB limit")
                fh.write(chunk)
        if size == 0:
            raise BadRequest("empty body: send the model file as the request body")
        return await run_in_threadpool(services.registry.add, add_request(request.query_params, path))


@requires("admin")
async def upload_model(request: Request) -> Response:
    services = services_of(request)
    suffix = "." + (request.query_params.get("format") or "tflite").lstrip(".")
    if suffix not in SUFFIXES:
        raise BadRequest(f"format: one of {', '.join(s.lstrip('.') for s in SUFFIXES)}")
    name = Path(request.query_params.get("name") or "upload").name or "upload"
    manifest = await receive_model(request, services, f"{name}{suffix}")
    return JSONResponse(manifest.to_json(), status_code=201)


@requires("admin")
async def activate_model(request: Request) -> Response:
    """Proven before the switch (ModelControl): 400 with the reason, the active model unchanged."""
    control: ModelControl = services_of(request)
    body = await json_body(request) if await request.body() else {}
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise BadRequest("version: a whole number")
    manifest = await run_in_threadpool(control.activate, request.path_params["name"], version)
    return JSONResponse({"active": manifest.ref})


@requires("admin")
async def rollback_model(request: Request) -> Response:
    manifest = await run_in_threadpool(services_of(request).manager.rollback)
    return JSONResponse({"active": manifest.ref})


@requires("admin")
async def delete_model(request: Request) -> Response:
    version = int_param(QueryParams({"v": request.path_params["version"]}), "v", None, 1, 10**9)
    assert version is not None
    services_of(request).registry.delete(request.path_params["name"], version)
    return Response(status_code=204)
