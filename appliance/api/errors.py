"""One place that turns domain errors into HTTP answers: JSON {"error": ...} with the error's status."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from appliance.config import ConfigError
from appliance.errors import ApplianceError

logger = logging.getLogger(__name__)


async def appliance_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status", 500)
    if status >= 500:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
    body: dict[str, object] = {"error": str(exc)}
    if isinstance(exc, ConfigError):
        body["problems"] = [{"key": p.key, "line": p.line, "message": p.message} for p in exc.problems]
    return JSONResponse(body, status_code=status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


HANDLERS = {ApplianceError: appliance_error, ConfigError: appliance_error, HTTPException: http_error}
