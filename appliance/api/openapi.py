"""OpenAPI 3.1 description of the REST API, built from the route table plus a few facts per route.

Summaries come from the endpoints' docstrings or the table below; the required scope comes from the
endpoint itself (`@requires`), so the spec cannot drift from the access rules.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from appliance import __version__
from appliance.api.auth import open_route
from appliance.api.bodies import JSONResponse

IMAGE_BODY = {
    "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png")}
}
OPTIONAL_IMAGE_BODY = {**IMAGE_BODY, "required": False}
JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}
MODEL_BODY = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    "required": True,
}


def _query(name: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind, **extra}}


def _path(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


DETAILS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/v1/health"): {"summary": "Liveness and readiness"},
    ("GET", "/api/v1/status"): {"summary": "Source, model, backend, rates, latencies, queues, store"},
    ("GET", "/api/v1/results/latest"): {"summary": "The newest stored result"},
    ("GET", "/api/v1/results"): {
        "summary": "Stored results, newest first, filtered and paginated",
        "parameters": [
            _query("since"),
            _query("until"),
            _query("label"),
            _query("model"),
            _query("min_score", "number"),
            _query("limit", "integer", minimum=1, maximum=1000),
            _query("cursor", "integer", minimum=1),
        ],
    },
    ("POST", "/api/v1/infer"): {
        "summary": "Run the active model on one image",
        "parameters": [_query("store", "string", enum=["0", "1"])],
        "requestBody": {**IMAGE_BODY, "required": True},
    },
    ("POST", "/api/v1/frames"): {
        "summary": "Push a frame to the push source (newest frame wins)",
        "requestBody": {**IMAGE_BODY, "required": True},
    },
    ("POST", "/api/v1/trigger"): {
        "summary": "Inspect now (next frame or posted image); flat JSON for PLCs",
        "requestBody": OPTIONAL_IMAGE_BODY,
    },
    ("POST", "/api/v1/jobs"): {
        "summary": "Start an inspection; answers a job id at once",
        "requestBody": OPTIONAL_IMAGE_BODY,
    },
    ("GET", "/api/v1/jobs/{job_id}"): {
        "summary": "State and result of a job",
        "parameters": [_path("job_id")],
    },
    ("GET", "/api/v1/models"): {"summary": "Every model version in the registry"},
    ("POST", "/api/v1/models"): {
        "summary": "Upload a model file; validated before it is stored",
        "parameters": [
            _query("task", enum=["classify", "detect", "segment", "raw"]),
            _query("name"),
            _query("labels"),
            _query("format", enum=["tflite", "rknn"]),
            _query("layout"),
            _query("color"),
            _query("mean"),
            _query("std"),
            _query("resize"),
            _query("score", "number"),
            _query("iou", "number"),
            _query("top_k", "integer"),
            _query("mask", "number"),
            _query("decoder"),
            _query("description"),
        ],
        "requestBody": MODEL_BODY,
    },
    ("POST", "/api/v1/models/rollback"): {"summary": "Re-activate the previously active model"},
    ("POST", "/api/v1/models/{name}/activate"): {
        "summary": "Activate a model (newest or given version)",
        "parameters": [_path("name")],
    },
    ("DELETE", "/api/v1/models/{name}/versions/{version}"): {
        "summary": "Delete an inactive model version",
        "parameters": [_path("name"), _path("version", "integer")],
    },
    ("GET", "/api/v1/config"): {"summary": "The running configuration"},
    ("PATCH", "/api/v1/config"): {
        "summary": "Change configuration keys (validated as a whole)",
        "requestBody": JSON_OBJECT,
    },
    ("POST", "/api/v1/restart"): {"summary": "Restart the appliance process"},
    ("GET", "/api/v1/setup"): {"summary": "Whether first-boot setup is still needed"},
    ("GET", "/metrics"): {"summary": "Prometheus metrics"},
    ("GET", "/api/v1/debug/profile"): {
        "summary": "Sample the process with py-spy for N seconds; flame graph SVG or speedscope JSON",
        "parameters": [
            _query("seconds", "integer", minimum=1, maximum=60),
            _query("format", enum=["flamegraph", "speedscope"]),
        ],
    },
    ("POST", "/api/v1/setup"): {
        "summary": "Set the admin password once; returns an admin token",
        "requestBody": JSON_OBJECT,
    },
    ("GET", "/api/v1/tokens"): {"summary": "List API tokens"},
    ("POST", "/api/v1/tokens"): {"summary": "Create an API token (shown once)", "requestBody": JSON_OBJECT},
    ("DELETE", "/api/v1/tokens/{token_id}"): {
        "summary": "Revoke an API token",
        "parameters": [_path("token_id")],
    },
}

ERROR = {
    "description": "Error",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
        }
    },
}


def _operation(method: str, route: Route) -> dict[str, Any]:
    detail = DETAILS.get((method, route.path), {})
    doc = (route.endpoint.__doc__ or "").strip().splitlines()
    operation: dict[str, Any] = {
        "summary": detail.get("summary") or (doc[0] if doc else route.path),
        "operationId": f"{method.lower()}_{route.name}",
        "responses": {
            "200": {"description": "OK"},
            "400": ERROR,
            "401": ERROR,
            "403": ERROR,
            "404": ERROR,
            "409": ERROR,
            "413": ERROR,
            "415": ERROR,
            "429": ERROR,
            "503": ERROR,
        },
    }
    for key in ("parameters", "requestBody"):
        if key in detail:
            operation[key] = detail[key]
    scope = getattr(route.endpoint, "required_scope", None)
    operation["security"] = [{"bearer": []}] if scope else []
    if scope:
        operation["x-scope"] = scope
    return operation


def build_spec(routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(method, route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "edge-appliance", "version": __version__},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


@open_route
async def openapi(request: Request) -> Response:
    return JSONResponse(build_spec(request.app.state.api_routes))
