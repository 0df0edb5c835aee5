"""Configuration over HTTP: read it, change it with validation, restart when a change needs it."""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appliance.api.auth import requires
from appliance.api.bodies import json_object
from appliance.api.context import config_control, restart_control
from appliance.config.file import to_dict
from appliance.errors import Busy


@requires("admin")
async def read_config(request: Request) -> Response:
    control = config_control(request)
    path = control.config_path
    return JSONResponse({"config": to_dict(control.config), "file": str(path) if path else None})


@requires("admin")
async def update_config(request: Request) -> Response:
    """Body {section: {key: value}}; 400 lists every problem; nothing is applied unless all is valid."""
    control = config_control(request)
    body = await json_object(request)
    change = await run_in_threadpool(control.change, body)  # may open a source, load a model
    return JSONResponse(
        {
            "changed": list(change.changed),
            "restart_needed": list(change.restart_needed),
            "config": to_dict(control.config),
        }
    )


@requires("admin")
async def restart(request: Request) -> Response:
    """Stop the server after answering; `appliance serve` then starts again with the saved config."""
    control = restart_control(request)
    if control.request_stop is None:
        raise Busy("restart is only available when started by `appliance serve`")
    control.restart_requested = True
    return JSONResponse(
        {"restarting": True}, status_code=202, background=BackgroundTask(control.request_stop)
    )
