"""One place that turns errors into HTTP answers: JSON {"error": ...} with the error's status, or, for
a browser asking for a page of the admin panel (Accept: text/html, not an API path), the error page.

Domain errors carry their status; Starlette's HTTP errors keep theirs (a 405 lists every method any
route on that path allows, not only the first route's); anything else is a bug: it is logged with its
traceback and answered with a 500 JSON body as a last resort.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from appliance.api.bodies import JSONResponse
from appliance.api.ui.views import error_page
from appliance.config import ConfigError
from appliance.errors import ApplianceError, Busy

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 1  # Busy (503): the client may try again after this many seconds
MACHINE_PATHS = ("/api/", "/v2", "/metrics", "/static/")  # always JSON, whatever the Accept header


def wants_page(request: Request) -> bool:
    """A browser asking for a UI page; the page needs the session (absent only outside the app's
    middleware, for a last-resort 500)."""
    if request.url.path.startswith(MACHINE_PATHS) or "session" not in request.scope:
        return False
    return "text/html" in request.headers.get("accept", "")


async def appliance_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status", 500)
    if status >= 500:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
    if wants_page(request):
        return error_page(request, status, str(exc))
    body: dict[str, object] = {"error": str(exc)}
    if isinstance(exc, ConfigError):
        body["problems"] = [{"key": p.key, "line": p.line, "message": p.message} for p in exc.problems]
    headers = {"Retry-After": str(RETRY_AFTER_S)} if isinstance(exc, Busy) else None
    return JSONResponse(body, status_code=status, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route on this path answers (for the Allow header of a 405)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": next(iter(route.methods))})
            if match is Match.FULL:
                methods |= route.methods
    return sorted(methods)


PAGE_TEXT = {
    404: "There is no such page on this appliance.",
    405: "This page cannot be used that way.",
}


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    if wants_page(request):
        page = error_page(request, exc.status_code, PAGE_TEXT.get(exc.status_code, exc.detail))
        page.headers.update(headers)
        return page
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """Last resort: a bug answered as a logged 500 JSON, never a text traceback."""
    logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    if wants_page(request):
        return error_page(request, 500, "Internal error: the appliance logged it (System page, recent log).")
    return JSONResponse({"error": "internal error (logged on the appliance)"}, status_code=500)


HANDLERS = {
    ApplianceError: appliance_error,
    ConfigError: appliance_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
