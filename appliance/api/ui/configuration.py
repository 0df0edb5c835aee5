"""The Configuration page: edit the settings with server-side validation, apply, restart when needed."""

from __future__ import annotations

import logging
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from appliance.api.context import config_control, restart_control
from appliance.api.ui.fields import form_sections, updates_from
from appliance.api.ui.guard import page
from appliance.api.ui.inline import SelfContained
from appliance.api.ui.state import ui_state
from appliance.api.ui.views import flash, redirect, render
from appliance.config import ConfigError, Problem
from appliance.errors import ApplianceError

logger = logging.getLogger(__name__)


def _context(request: Request) -> dict[str, Any]:
    control = config_control(request)
    path = control.config_path
    return {
        "sections": form_sections(control.config),
        "file": str(path) if path else None,
        "restart_pending": ui_state(request).restart_pending,
        "can_restart": restart_control(request).request_stop is not None,
        "errors": {},
        "submitted": {},
    }


@page
async def edit(request: Request) -> Response:
    return render(request, "config.html", _context(request))


def _refused(request: Request, problems: list[Problem]) -> Response:
    """The form again, with every problem next to its key; nothing was changed."""
    errors: dict[str, str] = {}
    for problem in problems:
        errors.setdefault(problem.key, problem.message)
    form = request.state.form
    context = {**_context(request), "errors": errors, "submitted": dict(form.items())}
    return render(request, "config.html", context, status=400)


@page
async def save(request: Request) -> Response:
    control = config_control(request)
    try:
        change = await run_in_threadpool(control.change, updates_from(request.state.form))
        if not change.changed:
            flash(request, "Nothing changed.")
            return redirect("/config")
    except ConfigError as err:
        return _refused(request, err.problems)
    except ApplianceError as err:
        return _refused(request, [Problem("(change)", str(err))])
    logger.info("configuration changed from the web UI: %s", ", ".join(change.changed))
    state = ui_state(request)
    state.restart_pending = tuple(sorted({*state.restart_pending, *change.restart_needed}))
    live = [key for key in change.changed if key not in change.restart_needed]
    if live:
        flash(request, "Saved and applied: " + ", ".join(live) + ".")
    if change.restart_needed:
        flash(request, "Saved. These take effect after a restart: " + ", ".join(change.restart_needed) + ".")
    return redirect("/config")


@page
async def restart(request: Request) -> Response:
    """Answer first, then stop the server; `appliance serve` starts again with the saved config."""
    control = restart_control(request)
    if control.request_stop is None:
        flash(request, "Restart is only available when the appliance runs under `appliance serve`.", "error")
        return redirect("/config")
    control.restart_requested = True
    logger.info("restart requested from the web UI")
    response = _restarting_page(request, status=202)
    response.background = BackgroundTask(control.request_stop)
    return response


@page
async def restarting(request: Request) -> Response:
    """The page the restart answer leaves in the address bar: refreshing it waits again, never restarts."""
    return _restarting_page(request)


def _restarting_page(request: Request, status: int = 200) -> Response:
    embedded: SelfContained = request.app.state.restart_page
    return render(request, "restarting.html", {"inline": embedded}, status=status, csp=embedded.csp())
