"""The System page: version, uptime, CPU, memory, temperatures, disk, the A/B system slots with the
system update upload (XHR, with progress) and reboot, recent logs, diagnostics."""

from __future__ import annotations

import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance import __version__
from appliance.api.bodies import JSONResponse
from appliance.api.context import panel_view
from appliance.api.ui import diagnostics, machine
from appliance.api.ui.guard import page, xhr
from appliance.api.ui.logs import RING
from appliance.api.ui.views import flash, redirect, render
from appliance.api.update import MAX_BUNDLE_BYTES, receive_bundle, system_document, updater_of

logger = logging.getLogger(__name__)
LOG_LINES = 200
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@page
async def overview(request: Request) -> Response:
    services = panel_view(request)
    level = request.query_params.get("level", "INFO").upper()
    level = level if level in LEVELS else "INFO"
    info = await run_in_threadpool(machine.snapshot, services.config.data_dir)
    lines = RING.lines(LOG_LINES, logging.getLevelName(level))
    system = await run_in_threadpool(system_document, updater_of(request))
    context = {
        "version": __version__,
        "uptime_s": time.time() - services.started,
        "info": info,
        "lines": lines[::-1],
        "level": level,
        "levels": LEVELS,
        "log_level": services.config.log.level,
        "system": system,
        "max_bundle_gb": round(MAX_BUNDLE_BYTES / 2**30, 1),
    }
    return render(request, "system.html", context)


@page
async def bundle(request: Request) -> Response:
    data = await run_in_threadpool(diagnostics.bundle, panel_view(request))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Response(
        data,
        media_type="application/zip",
        headers={
            "content-disposition": f'attachment; filename="appliance-diagnostics-{stamp}.zip"',
            "cache-control": "no-store",
        },
    )


@xhr
async def update(request: Request) -> Response:
    """The bundle is the raw body (XHR with progress, CSRF token in the header), as for the API."""
    result = await receive_bundle(request, "ui")
    logger.info("system bundle %s installed into slot %s from the web UI", result.version, result.slot)
    return JSONResponse(result.to_json())


@page
async def reboot(request: Request) -> Response:
    await run_in_threadpool(updater_of(request).request_reboot)
    logger.info("reboot requested from the web UI")
    flash(request, "Rebooting: the appliance is back in a few minutes.")
    return redirect("/system")
