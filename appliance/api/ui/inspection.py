"""The inspection screen: the active job, a large OK/NG of the last part with its reasons, counters
(reset), the last NG images, the live frame with the job's regions, the job list (activate, delete),
a job editor that draws rectangles on a captured frame, dataset downloads, and result flags."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.bodies import JSONResponse
from appliance.api.context import inspection_view
from appliance.api.jobs import counters_json, dataset_download, flag_result, save_job
from appliance.api.ui import yields
from appliance.api.ui.guard import page, xhr
from appliance.api.ui.overlays import jpeg, placeholder
from appliance.api.ui.views import flash, redirect, render
from appliance.control import InspectionView
from appliance.errors import ApplianceError, BadRequest
from appliance.inspection.archive import NAME
from appliance.inspection.recipe import Job, RecipeError

logger = logging.getLogger(__name__)

NG_SHOWN = 6
OK_BGR, NG_BGR, REGION_BGR = (80, 200, 80), (60, 60, 230), (255, 200, 0)


def new_job_template(services: InspectionView) -> dict[str, Any]:
    """A starting point for the editor: the next free number, the running model, one full-frame region."""
    numbers = services.recipes.numbers()
    runtime = services.manager.current()
    model = runtime.manifest if runtime is not None else None
    frame = services.pipeline.tap.sample().frame
    h, w = frame.image.shape[:2] if frame is not None and frame.image is not None else (480, 640)
    return {
        "number": next(n for n in range(1, 1000) if n not in numbers) if len(numbers) < 999 else 1,
        "name": "new job",
        "model": {"name": model.name if model else "face", "version": model.version if model else 1},
        "snapshot": {"keep": "ng", "ok_sample_rate": 0.0},
        "regions": [{"id": 1, "name": "all", "shape": "rect", "points": [[0, 0], [w, h]]}],
    }


def last_verdict(services: InspectionView) -> dict[str, Any] | None:
    latest = services.bus.latest
    if latest is None or latest.verdict is None:
        return None
    return {"seq": latest.seq, **latest.verdict}


def ng_images(services: InspectionView) -> list[dict[str, Any]]:
    if services.archive is None:
        return []
    shown = services.archive.images(ng_only=True)[:NG_SHOWN]
    return [{"name": f.path.name, "job": f.job, "ts": f.ts, "seq": f.seq} for f in shown]


def page_context(services: InspectionView, edit: int | None) -> dict[str, Any]:
    jobs = services.recipes.jobs()
    counters = counters_json(services)
    editing = next((j.to_json() for j in jobs if j.number == edit), None) or new_job_template(services)
    editing.pop("version", None)
    return {
        "active": services.switch.active(),
        "switch": services.switch.status(),
        "jobs": jobs,
        "verdict": last_verdict(services),
        "counters": counters,
        "reset_time": datetime.fromtimestamp(counters["total"]["reset_at"], UTC).isoformat(
            timespec="seconds"
        ),
        "ng_images": ng_images(services),
        "editing": json.dumps(editing, indent=2),
        "dataset": services.dataset is not None,
        "feeder": services.feeder.status() if services.feeder is not None else None,
        "yield_chart": yields.chart(services.reader.path),
    }


@page
async def screen(request: Request) -> Response:
    raw = request.query_params.get("edit", "")
    edit = int(raw) if raw.isdigit() and len(raw) <= 3 else None
    context = await run_in_threadpool(page_context, inspection_view(request), edit)
    return render(request, "inspection.html", context)


@xhr
async def status(request: Request) -> Response:
    """What the screen refreshes: the last verdict and the counters."""
    services = inspection_view(request)
    counters = await run_in_threadpool(counters_json, services)
    return JSONResponse({"verdict": last_verdict(services), "counters": counters})


def draw_regions(image: np.ndarray, job: Job | None, verdict: dict[str, Any] | None) -> np.ndarray:
    """A copy of `image` with every region outlined (green passed, red NG in the last verdict)."""
    out = np.ascontiguousarray(image.copy())
    if job is None:
        return out
    passed = {r["region"]: r["ok"] for r in (verdict or {}).get("regions", [])}
    for region in job.regions:
        colour = REGION_BGR if region.id not in passed else (OK_BGR if passed[region.id] else NG_BGR)
        points = np.array(region.points, np.int32)
        if region.shape == "rect":
            (x1, y1), (x2, y2) = points
            cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), colour, 2)
        else:
            cv2.polylines(out, [points.reshape(-1, 1, 2)], True, colour, 2)
        x, y = (int(v) for v in points.min(axis=0))
        cv2.putText(
            out, f"{region.id} {region.name}", (x + 4, y + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1
        )
    return out


def frame_jpeg(services: InspectionView, overlays: bool) -> bytes:
    frame = services.pipeline.tap.sample().frame
    latest = services.bus.latest
    image = frame.image if frame is not None and frame.image is not None else None
    if image is None and latest is not None and latest.image is not None:
        image = latest.image
    if image is None:
        return placeholder("no frame yet: trigger once or start the source")
    job = services.switch.active() if overlays else None
    return jpeg(draw_regions(image, job, last_verdict(services)), 85)


@page
async def frame(request: Request) -> Response:
    """The newest source frame; with ?regions=1 the active job's regions drawn on it."""
    services = inspection_view(request)
    data = await run_in_threadpool(frame_jpeg, services, request.query_params.get("regions") == "1")
    return Response(data, media_type="image/jpeg", headers={"cache-control": "no-store"})


async def _act(request: Request, done: str, action: Any, *args: Any) -> Response:
    target = "/inspection"
    try:
        await run_in_threadpool(action, *args)
    except RecipeError as err:
        flash(request, "Not saved: " + "; ".join(err.problems), "error")
    except ApplianceError as err:
        flash(request, str(err), "error")
    else:
        flash(request, done)
    return redirect(target)


def _number(request: Request) -> int:
    return int(request.path_params["number"])


def _parse_editor(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RecipeError([f"the job text is not valid JSON: {err}"]) from err


@page
async def save(request: Request) -> Response:
    services = inspection_view(request)
    text = str(request.state.form.get("job", ""))
    try:
        value = _parse_editor(text)
        job = await run_in_threadpool(save_job, services, value)
    except RecipeError as err:
        flash(request, "Not saved: " + "; ".join(err.problems), "error")
        return redirect("/inspection")
    except ApplianceError as err:
        flash(request, str(err), "error")
        return redirect("/inspection")
    flash(request, f"Job {job.number} ({job.name}) saved as version {job.version}.")
    return redirect(f"/inspection?edit={job.number}")


@page
async def activate(request: Request) -> Response:
    number = _number(request)
    switch = inspection_view(request).switch
    return await _act(request, f"Job {number} is now active.", switch.activate, number)


@page
async def delete(request: Request) -> Response:
    services, number = inspection_view(request), _number(request)
    if services.switch.number() == number:
        flash(request, f"Job {number} is active: activate another job first.", "error")
        return redirect("/inspection")
    return await _act(request, f"Job {number} deleted.", services.recipes.delete, number)


@page
async def reset(request: Request) -> Response:
    counters = inspection_view(request).counters
    return await _act(request, "Counters reset.", counters.reset)


@page
async def archived(request: Request) -> Response:
    """One archived image by its file name (nothing else is served)."""
    services = inspection_view(request)
    name = request.path_params["name"]
    if services.archive is None or not NAME.match(name):
        return Response("no such image", status_code=404, media_type="text/plain")
    path: Path = services.archive.root / name
    try:
        data = await run_in_threadpool(path.read_bytes)
    except OSError:
        return Response("no such image", status_code=404, media_type="text/plain")
    return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


@page
async def dataset(request: Request) -> Response:
    return await dataset_download(inspection_view(request), request.path_params["fmt"])


@page
async def flag(request: Request) -> Response:
    """The "wrong" / "right" buttons on a result's page."""
    row_id = int(request.path_params["row_id"])
    value = str(request.state.form.get("flag", ""))
    try:
        example = await run_in_threadpool(flag_result, inspection_view(request), row_id, value)
    except (ApplianceError, BadRequest) as err:
        flash(request, str(err), "error")
    else:
        flash(request, f"Result {row_id} flagged {example.reason}: kept in the dataset as {example.id}.")
    return redirect(f"/results/{row_id}")
