"""The System page: version, uptime, CPU, memory, temperatures, disk, recent logs, diagnostics."""

from __future__ import annotations

import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance import __version__
from appliance.api.status import services_of
from appliance.api.ui import diagnostics, machine
from appliance.api.ui.guard import page
from appliance.api.ui.logs import RING
from appliance.api.ui.views import render

LOG_LINES = 200
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@page
async def overview(request: Request) -> Response:
    services = services_of(request)
    level = request.query_params.get("level", "INFO").upper()
    level = level if level in LEVELS else "INFO"
    info = await run_in_threadpool(machine.snapshot, services.config.data_dir)
    lines = RING.lines(LOG_LINES, logging.getLevelName(level))
    context = {
        "version": __version__,
        "uptime_s": time.time() - services.started,
        "info": info,
        "lines": lines[::-1],
        "level": level,
        "levels": LEVELS,
        "log_level": services.config.log.level,
    }
    return render(request, "system.html", context)


@page
async def bundle(request: Request) -> Response:
    data = await run_in_threadpool(diagnostics.bundle, services_of(request))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Response(
        data,
        media_type="application/zip",
        headers={
            "content-disposition": f'attachment; filename="appliance-diagnostics-{stamp}.zip"',
            "cache-control": "no-store",
        },
    )
