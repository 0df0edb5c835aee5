"""Inspections for PLCs: a synchronous trigger with flat JSON, and asynchronous jobs."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.auth import requires
from appliance.api.bodies import JSONResponse, read_body
from appliance.api.context import trigger_view
from appliance.api.infer import IMAGE_TYPES, decode_image
from appliance.control import ConfigView, TriggerView
from appliance.errors import ApplianceError, UnsupportedMediaType, error_code
from appliance.pipeline.inspection import TriggerOutcome, flat_result


def flat(outcome: TriggerOutcome) -> dict[str, Any]:
    return flat_result(outcome.result, outcome.ok)


async def optional_image(request: Request, services: ConfigView) -> np.ndarray | None:
    """The posted JPEG/PNG, or None for an empty body (then the live source is used)."""
    data = await read_body(request, services.config.server.max_upload_bytes)
    if not data:
        return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in IMAGE_TYPES:
        raise UnsupportedMediaType(f"content type {content_type or '(none)'!r}: send image/jpeg or image/png")
    return await run_in_threadpool(decode_image, data)


def run_trigger(services: TriggerView, image: np.ndarray | None) -> dict[str, Any]:
    return flat(services.inspector.trigger(services.pipeline, image))


@requires("operate")
async def trigger(request: Request) -> Response:
    services = trigger_view(request)
    image = await optional_image(request, services)
    try:
        answer = await run_in_threadpool(run_trigger, services, image)
    except ApplianceError as err:
        return JSONResponse({"error": str(err), "error_code": error_code(err)}, status_code=err.status)
    return JSONResponse(answer)


@requires("operate")
async def create_job(request: Request) -> Response:
    services = trigger_view(request)
    image = await optional_image(request, services)
    job = services.pending.submit(lambda: run_trigger(services, image))
    return JSONResponse(job.to_json(), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@requires("operate")
async def get_job(request: Request) -> Response:
    return JSONResponse(trigger_view(request).pending.get(request.path_params["job_id"]).to_json())
