"""Inspection jobs over HTTP: recipes (CRUD, import, export), activation, production counters, and
the hard-example dataset (export download, operator flags). docs/api.md documents each route."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from appliance.api.auth import requires
from appliance.api.bodies import JSONResponse, json_object, read_body
from appliance.api.context import jobs_view
from appliance.api.params import int_param
from appliance.control import JobsView
from appliance.errors import BadRequest, Conflict, NotFound
from appliance.inspection.dataset import FLAGS, FORMATS, Dataset, Example
from appliance.inspection.feeder import flag
from appliance.inspection.recipe import MAX_JOB, MIN_JOB, Job, parse_job
from appliance.inspection.store import MAX_DOCUMENT_BYTES
from appliance.store.reader import Query

MAX_RESULT_ID = 2**62


def job_number(request: Request) -> int:
    number = int_param(
        QueryParams({"number": request.path_params["number"]}), "number", None, MIN_JOB, MAX_JOB
    )
    assert number is not None
    return number


def version_param(request: Request) -> int | None:
    return int_param(request.query_params, "version", None, 1, 10**9)


def jobs_listing(services: JobsView) -> dict[str, Any]:
    return {"jobs": [j.to_json() for j in services.recipes.jobs()], "active": services.switch.number()}


def counters_json(services: JobsView) -> dict[str, Any]:
    snapshots = services.counters.read_all()
    return {
        "active_job": services.switch.number(),
        "total": snapshots[0].to_json(),
        "jobs": [s.to_json() for s in snapshots[1:]],
    }


@requires("read")
async def list_jobs(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(jobs_listing, jobs_view(request)))


@requires("read")
async def get_job(request: Request) -> Response:
    services = jobs_view(request)
    job = await run_in_threadpool(services.recipes.get, job_number(request), version_param(request))
    return JSONResponse({**job.to_json(), "versions": services.recipes.versions(job.number)})


def save_job(services: JobsView, value: object) -> Job:
    """Validate and store a job as its new version; the active job is re-activated (proven) when saved."""
    job = services.recipes.save(parse_job(value))
    if services.switch.number() == job.number:
        services.switch.activate(job.number, job.version)
    return job


@requires("admin")
async def put_job(request: Request) -> Response:
    services = jobs_view(request)
    body = await json_object(request, MAX_DOCUMENT_BYTES)
    number = job_number(request)
    if body.get("number", number) != number:
        raise BadRequest(f"number: {body.get('number')!r} does not match the path's job {number}")
    job = await run_in_threadpool(save_job, services, {**body, "number": number})
    return JSONResponse(job.to_json(), status_code=201)


@requires("admin")
async def delete_job(request: Request) -> Response:
    services = jobs_view(request)
    number = job_number(request)
    if services.switch.number() == number:
        raise Conflict(f"job {number} is active: activate another job first")
    await run_in_threadpool(services.recipes.delete, number)
    return Response(status_code=204)


@requires("operate")
async def activate_job(request: Request) -> Response:
    """Proven before the switch: the job's models load and run, or 400/404 and nothing changed."""
    services = jobs_view(request)
    job = await run_in_threadpool(services.switch.activate, job_number(request), version_param(request))
    return JSONResponse({"active": job.number, "version": job.version, "name": job.name})


@requires("read")
async def export_jobs(request: Request) -> Response:
    data = await run_in_threadpool(jobs_view(request).recipes.export)
    disposition = f'attachment; filename="jobs-{time.strftime("%Y%m%d-%H%M%S", time.gmtime())}.json"'
    return Response(data, media_type="application/json", headers={"content-disposition": disposition})


@requires("admin")
async def import_jobs(request: Request) -> Response:
    """A JSON or TOML document (as exported, or one bare job): every job valid, or nothing saved."""
    services = jobs_view(request)
    data = await read_body(request, MAX_DOCUMENT_BYTES)
    if not data:
        raise BadRequest("empty body: send the jobs document (JSON or TOML)")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    name = "import.toml" if "toml" in kind else "import.json"
    jobs = await run_in_threadpool(services.recipes.import_document, data, name)
    return JSONResponse({"imported": [{"number": j.number, "version": j.version} for j in jobs]}, 201)


@requires("read")
async def get_counters(request: Request) -> Response:
    return JSONResponse(await run_in_threadpool(counters_json, jobs_view(request)))


@requires("operate")
async def reset_counters(request: Request) -> Response:
    """Zero every counter, or one job's ({"job": N}); answers the reset time."""
    services = jobs_view(request)
    body = await json_object(request, empty_ok=True)
    job = body.get("job")
    if job is not None and (isinstance(job, bool) or not isinstance(job, int) or not 0 <= job <= MAX_JOB):
        raise BadRequest(f"job: a job number 1..{MAX_JOB} (0 or absent: everything), got {job!r}")
    reset_at = await run_in_threadpool(services.counters.reset, job or None)
    return JSONResponse({"reset_at": reset_at, "job": job or 0})


def dataset_of(services: JobsView) -> Dataset:
    if services.dataset is None:
        raise Conflict("the dataset is off (dataset.enabled = false)")
    return services.dataset


def export_zip(dataset: Dataset, fmt: str) -> tuple[Path, Path]:
    """The dataset as YOLO or COCO in a zip file in a temporary folder (removed after the download)."""
    folder = Path(tempfile.mkdtemp(prefix="dataset-export-"))
    try:
        dataset.export(folder / fmt, fmt)
        archive = shutil.make_archive(str(folder / f"dataset-{fmt}"), "zip", folder / fmt)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, Path(archive)


async def dataset_download(services: JobsView, fmt: str) -> Response:
    if fmt not in FORMATS:
        raise BadRequest(f"format: one of {', '.join(FORMATS)}, got {fmt!r}")
    folder, archive = await run_in_threadpool(export_zip, dataset_of(services), fmt)
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=archive.name,
        background=BackgroundTask(shutil.rmtree, folder, True),
    )


@requires("read")
async def export_dataset(request: Request) -> Response:
    return await dataset_download(jobs_view(request), request.query_params.get("format") or "yolo")


def stored_row(services: JobsView, result_id: int) -> dict[str, Any] | None:
    """The stored result `result_id`, or None (not stored, removed by retention, no database yet)."""
    if not 0 < result_id < MAX_RESULT_ID or not services.reader.path.exists():
        return None
    rows, _ = services.reader.page(Query(cursor=result_id + 1, limit=1))
    return rows[0] if rows and rows[0]["id"] == result_id else None


def snapshot_file(services: JobsView, name: str) -> Path | None:
    """The stored snapshot `name` under data_dir/snapshots, or None (missing or outside it)."""
    root = (services.config.data_dir / "snapshots").resolve()
    candidate = (root / name).resolve()
    if "\x00" in name or not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def flag_result(services: JobsView, result_id: int, value: str) -> Example:
    if value not in FLAGS:
        raise BadRequest(f"flag: one of {', '.join(FLAGS)}, got {value!r}")
    dataset = dataset_of(services)
    row = stored_row(services, result_id)
    if row is None:
        raise NotFound(f"no stored result with id {result_id}")
    snapshot = snapshot_file(services, row["snapshot"]) if row.get("snapshot") else None
    return flag(dataset, row, snapshot, value)


@requires("operate")
async def flag_dataset(request: Request) -> Response:
    """An operator's "wrong" / "right" on a stored result: kept in the dataset with that flag."""
    body = await json_object(request, 4096)
    result_id = body.get("result_id")
    if isinstance(result_id, bool) or not isinstance(result_id, int) or not 0 < result_id < MAX_RESULT_ID:
        raise BadRequest(f"result_id: the id of a stored result, got {result_id!r}")
    example = await run_in_threadpool(flag_result, jobs_view(request), result_id, str(body.get("flag")))
    return JSONResponse(example.to_json(), status_code=201)


def routes() -> list[Route]:
    base = "/api/v1/inspection"
    return [
        Route(f"{base}/jobs", list_jobs, methods=["GET"]),
        Route(f"{base}/jobs/{{number}}", get_job, methods=["GET"]),
        Route(f"{base}/jobs/{{number}}", put_job, methods=["PUT"]),
        Route(f"{base}/jobs/{{number}}", delete_job, methods=["DELETE"]),
        Route(f"{base}/jobs/{{number}}/activate", activate_job, methods=["POST"]),
        Route(f"{base}/export", export_jobs, methods=["GET"]),
        Route(f"{base}/import", import_jobs, methods=["POST"]),
        Route(f"{base}/counters", get_counters, methods=["GET"]),
        Route(f"{base}/counters/reset", reset_counters, methods=["POST"]),
        Route("/api/v1/dataset/export", export_dataset, methods=["GET"]),
        Route("/api/v1/dataset/flags", flag_dataset, methods=["POST"]),
    ]
