"""Health and status: what a technician or a PLC needs to know the appliance is working."""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance import __version__
from appliance.api.auth import open_route, requires
from appliance.api.bodies import JSONResponse
from appliance.api.context import status_view
from appliance.api.update import system_document, updater_of
from appliance.control import StatusView
from appliance.platform import cached_report
from appliance.plc.outputs import outputs_status


@open_route
async def health(request: Request) -> Response:
    """200 only while results are being produced; else 503 with the reasons (docs/api.md, "Health")."""
    health = status_view(request).health()  # no I/O: cheap enough for the event loop
    return JSONResponse({**health.to_json(), "version": __version__}, status_code=200 if health.ok else 503)


def current_rss_mb() -> float:
    """Resident memory now (not the peak): /proc/self/statm's second field, in pages (Linux)."""
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # elsewhere: the peak
    return round(resident * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def status_document(services: StatusView) -> dict[str, Any]:
    runtime = services.manager.current()
    source = services.pipeline.source
    pipeline = services.pipeline.status()
    writer = services.writer
    store: dict[str, Any] = {"enabled": writer is not None}
    if writer is not None:
        store.update(writer.status())  # rows, pending, written, errors, dropped, degraded, free_bytes...
    return {
        "version": __version__,
        "ready": services.ready,
        "health": services.health().to_json(),
        "pid": os.getpid(),
        "uptime_s": round(time.time() - services.started, 1),
        "source": dataclasses.asdict(source.status()) if source is not None else None,
        "model": runtime.status() if runtime is not None else None,
        "model_error": services.manager.last_error,
        "backend": runtime.backend if runtime is not None else None,
        "fps": services.pipeline.results_fps(),
        "results": services.pipeline.published,
        "latency_ms": {
            name: {"p50": s["p50_ms"], "p99": s["p99_ms"]} for name, s in pipeline["stages"].items()
        },
        "pipeline": pipeline,
        "drops": source.status().dropped if source is not None else 0,
        "store": store,
        "serial": (
            {**services.link.status(), "sink": services.sink.status() if services.sink else None}
            if services.link is not None
            else None
        ),
        "platform": cached_report().to_json(),
        "plc": outputs_status(services.outputs),
        "rss_mb": current_rss_mb(),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


@requires("read")
async def status(request: Request) -> Response:
    document = status_document(status_view(request))
    # both system slots, their versions, which booted, the last rollback (RAUC; a subprocess)
    document["system"] = await run_in_threadpool(system_document, updater_of(request))
    return JSONResponse(document)
