"""The model registry over HTTP: list, upload (validated), activate, rollback, delete inactive versions,
and shadow runs of a candidate beside the active model, with promotion on their evidence."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from appliance.api.auth import requires
from appliance.api.bodies import JSONResponse, json_object, save_body
from appliance.api.context import models_view
from appliance.api.params import float_param, int_param
from appliance.control import ModelsView
from appliance.errors import BackendUnavailable, BadRequest, ModelRejected, NotFound
from appliance.models.manifest import (
    MAX_TOP_K,
    DecoderSpec,
    InputSpec,
    Manifest,
    Thresholds,
    check_labels,
)
from appliance.models.registry import SUFFIXES, AddRequest


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
    check_labels(task, labels)
    spec = InputSpec(
        params.get("layout", "nhwc"),
        params.get("color", "rgb"),
        _floats(params, "mean", (0.0, 0.0, 0.0)),
        _floats(params, "std", (255.0, 255.0, 255.0)),
        params.get("resize", "stretch"),
    )
    score, iou, mask = (float_param(params, n) for n in ("score", "iou", "mask"))
    defaults = Thresholds()
    thresholds = Thresholds(
        score=defaults.score if score is None else score,
        iou=defaults.iou if iou is None else iou,
        top_k=int_param(params, "top_k", defaults.top_k, 1, MAX_TOP_K) or defaults.top_k,
        mask=defaults.mask if mask is None else mask,
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
    registry = models_view(request).registry
    active = registry.active()
    items = [{**m.to_json(), "active": active is not None and active.ref == m.ref} for m in registry.list()]
    return JSONResponse({"models": items, "active": active.ref if active else None})


async def receive_model(request: Request, services: ModelsView, filename: str) -> Manifest:
    """Check the options in the query string, stream the body (the model file) to a staging folder,
    at most server.max_model_bytes, and add it to the registry. Shared by the API and the web UI."""
    with tempfile.TemporaryDirectory(dir=services.registry.root, prefix=".upload-") as tmp:
        path = Path(tmp) / Path(filename).name
        request_to_add = add_request(request.query_params, path)  # bad options: 400 before the upload
        if await save_body(request, services.config.server.max_model_bytes, path) == 0:
            raise BadRequest("empty body: send the model file as the request body")
        try:
            return await run_in_threadpool(services.registry.add, request_to_add)
        except BackendUnavailable as err:  # e.g. an .rknn file where no NPU can check it
            raise ModelRejected(f"the model cannot be validated here: {err}") from err


@requires("admin")
async def upload_model(request: Request) -> Response:
    services = models_view(request)
    suffix = "." + (request.query_params.get("format") or "tflite").lstrip(".")
    if suffix not in SUFFIXES:
        raise BadRequest(f"format: one of {', '.join(s.lstrip('.') for s in SUFFIXES)}")
    name = Path(request.query_params.get("name") or "upload").name or "upload"
    manifest = await receive_model(request, services, f"{name}{suffix}")
    return JSONResponse(manifest.to_json(), status_code=201)


def version_of(body: dict[str, Any]) -> int | None:
    version = body.get("version")
    if isinstance(version, float) and version.is_integer():  # JSON has no integer type: 2.0 is 2
        version = int(version)
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise BadRequest("version: a whole number from 1")
    return version


@requires("admin")
async def activate_model(request: Request) -> Response:
    """Proven before the switch (ModelControl): 400 with the reason, the active model unchanged."""
    control = models_view(request)
    version = version_of(await json_object(request, empty_ok=True))
    manifest = await run_in_threadpool(control.activate, request.path_params["name"], version)
    return JSONResponse({"active": manifest.ref})


@requires("admin")
async def rollback_model(request: Request) -> Response:
    manifest = await run_in_threadpool(models_view(request).rollback)
    return JSONResponse({"active": manifest.ref})


@requires("admin")
async def delete_model(request: Request) -> Response:
    version = int_param(QueryParams({"v": request.path_params["version"]}), "v", None, 1, 10**9)
    assert version is not None
    models_view(request).registry.delete(request.path_params["name"], version)
    return Response(status_code=204)


@requires("read")
async def shadow_status(request: Request) -> Response:
    return JSONResponse(models_view(request).shadow.status())


@requires("admin")
async def start_shadow(request: Request) -> Response:
    """Shadow a candidate (body: name, optional version) beside the active model; replaces a running one."""
    body = await json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("name: the model to shadow")
    shadow = models_view(request).shadow
    return JSONResponse(await run_in_threadpool(shadow.start, name, version_of(body)))


@requires("admin")
async def stop_shadow(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(models_view(request).shadow.stop))


@requires("read")
async def shadow_example(request: Request) -> Response:
    """One disagreeing frame's thumbnail (ids from the status's `examples`)."""
    raw = request.path_params["example_id"]
    path = models_view(request).shadow.examples.path_of(int(raw)) if raw.isdigit() and len(raw) < 10 else None
    if path is None:
        raise NotFound(f"no shadow example {raw[:20]!r}: the run ended or it was replaced by newer ones")
    return FileResponse(path, media_type="image/jpeg", headers={"cache-control": "no-store"})


@requires("admin")
async def promote_model(request: Request) -> Response:
    """Activate a shadowed candidate if its run reached model.shadow_min_agreement over
    model.shadow_min_frames (409 naming the shortfall otherwise), or with "override": true."""
    body = await json_object(request, empty_ok=True)
    override = body.get("override", False)
    if not isinstance(override, bool):
        raise BadRequest("override: true or false")
    by = request.state.principal.name
    shadow = models_view(request).shadow
    manifest = await run_in_threadpool(
        shadow.promote, request.path_params["name"], version_of(body), override, f"api:{by}"
    )
    return JSONResponse({"active": manifest.ref, "promotion": manifest.promotion})
