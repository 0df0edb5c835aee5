"""Models: versions with manifests and reports, upload (XHR, with progress), test on an image,
activate, roll back, delete inactive versions; shadow a candidate, see its agreement and disagreeing
frames, promote it (or override)."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.bodies import JSONResponse, read_body
from appliance.api.context import models_view
from appliance.api.infer import decode_image
from appliance.api.models import receive_model
from appliance.api.ui.guard import page, xhr
from appliance.api.ui.overlays import caption_of, draw, jpeg
from appliance.api.ui.views import flash, redirect, render
from appliance.control import ModelsView
from appliance.errors import ApplianceError, BadRequest
from appliance.models.manifest import DECODERS, TASKS, Manifest
from appliance.models.registry import SUFFIXES
from appliance.pipeline.oneshot import OneShot

logger = logging.getLogger(__name__)

MAX_TEST_IMAGE_BYTES = 16 * 1024 * 1024


def _groups(services: ModelsView) -> list[dict[str, Any]]:
    """One entry per model name: its versions, newest first, each with its manifest as JSON text."""
    active = services.registry.active()
    groups: dict[str, list[dict[str, Any]]] = {}
    for manifest in services.registry.list():
        groups.setdefault(manifest.name, []).append(
            {
                "m": manifest,
                "active": active is not None and active.ref == manifest.ref,
                "manifest_json": json.dumps(manifest.to_json(), indent=2),
                "report_json": json.dumps(manifest.report, indent=2) if manifest.report else None,
            }
        )
    return [{"name": name, "versions": versions[::-1]} for name, versions in groups.items()]


@page
async def listing(request: Request) -> Response:
    services = models_view(request)
    runtime = services.manager.current()
    context = {
        "groups": await run_in_threadpool(_groups, services),
        "running": runtime.status() if runtime else None,
        "running_task": runtime.manifest.task if runtime else None,
        "model_error": services.manager.last_error,
        "tasks": TASKS,
        "decoders": DECODERS,
        "suffixes": [s.lstrip(".") for s in SUFFIXES],
        "max_mb": round(services.config.server.max_model_bytes / 2**20, 1),
        "shadow": services.shadow.status(),
    }
    return render(request, "models.html", context)


@xhr
async def upload(request: Request) -> Response:
    """The model file is the raw body; its options are query parameters (as for POST /api/v1/models)."""
    services = models_view(request)
    filename = Path(request.query_params.get("filename") or "upload.tflite").name
    if Path(filename).suffix.lower() not in SUFFIXES:
        raise BadRequest(f"{filename}: model files must end in {' or '.join(SUFFIXES)}")
    manifest = await receive_model(request, services, filename)
    logger.info("model %s uploaded from the web UI", manifest.ref)
    return JSONResponse({"ref": manifest.ref, "name": manifest.name, "version": manifest.version}, 201)


def _parse_ref(services: ModelsView, ref: str) -> Manifest:
    name, _, version = ref.partition(":")
    if not version.isdigit():
        raise BadRequest(f"choose a model version (got {ref!r})")
    return services.registry.get(name, int(version))


def _run_test(services: ModelsView, manifest: Manifest, image: np.ndarray) -> dict[str, Any]:
    with OneShot(services.registry, manifest, services.config, services.backends) as oneshot:
        result = oneshot.run(image, source="web-test")
    summary = result.to_json()
    caption = caption_of(result.label, result.score, result.count, (manifest.ref, result.backend))
    drawn = jpeg(draw(image, summary["detections"], caption), 85)
    return {
        "result": summary,
        "image": "data:image/jpeg;base64," + base64.b64encode(drawn).decode("ascii"),
    }


@xhr
async def test_image(request: Request) -> Response:
    """Run one model on the uploaded image (the raw body); answer the result and the image drawn."""
    services = models_view(request)
    manifest = _parse_ref(services, request.query_params.get("model", ""))
    image = decode_image(await read_body(request, MAX_TEST_IMAGE_BYTES))
    answer = await run_in_threadpool(_run_test, services, manifest, image)
    return JSONResponse(answer)


async def _act(request: Request, done: str, action: Any, *args: Any) -> Response:
    try:
        manifest = await run_in_threadpool(action, *args)
    except ApplianceError as err:
        flash(request, str(err), "error")
    else:
        flash(request, done.format(ref=getattr(manifest, "ref", "")))
    return redirect("/models")


def _version(request: Request) -> tuple[str, int]:
    return request.path_params["name"], int(request.path_params["version"])


@page
async def activate(request: Request) -> Response:
    control = models_view(request)
    return await _act(request, "Model {ref} is now active and running.", control.activate, *_version(request))


@page
async def rollback(request: Request) -> Response:
    control = models_view(request)
    return await _act(request, "Rolled back: model {ref} is active again.", control.rollback)


@page
async def delete(request: Request) -> Response:
    name, version = _version(request)
    registry = models_view(request).registry
    return await _act(request, f"Model {name}:{version} deleted.", registry.delete, name, version)


@page
async def shadow(request: Request) -> Response:
    runner = models_view(request).shadow
    name, version = _version(request)
    done = f"Shadow run of {name}:{version} started: it is compared with the active model on live frames."
    return await _act(request, done, runner.start, name, version)


@page
async def stop_shadow(request: Request) -> Response:
    return await _act(request, "Shadow run stopped.", models_view(request).shadow.stop)


@page
async def promote(request: Request) -> Response:
    runner = models_view(request).shadow
    name, version = _version(request)
    override = request.state.form.get("override") == "1"
    done = "Model {ref} promoted: it is now active" + (" (override recorded)." if override else ".")
    return await _act(request, done, runner.promote, name, version, override, "ui:admin")
